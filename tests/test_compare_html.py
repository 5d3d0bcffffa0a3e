"""The layout planner's before / after page (issue 19), opened in a real headless Chromium.

``footfall compare`` of two stored weeks writes ``compare.html`` (one self-contained
page: both periods on one colour scale, the difference map, the zone table with 95 %
intervals and verdicts, the plain-language summary), its PNGs and a CSV. Chromium
(Debian's ``chromium`` over the DevTools protocol on loopback, the network off) must
load every image from the page itself with no console error, and print it on A4. The
stored weeks are drawn as in ``test_period_compare`` (the promo table's visits and heat
up 60 % in the second week).
"""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image
from test_period_compare import _store_days

from heatmap.report import compare_page, planner_figures, store_drawing
from heatmap.spatial.floorplan import load, load_default
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from sensing.cli.main import main

from chromium_page import A4_PT, DevTools, chromium, pdf_page_sizes  # noqa: F401  (a fixture)

BEFORE, AFTER = "2026-11-02..2026-11-08", "2026-11-09..2026-11-15"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("compare")
    db = d / "store.db"
    _store_days(db, seed=5, lift={"promo": 1.6}, heat=True)
    out = d / "out"
    args = ["compare", "--db", str(db), "--before", BEFORE, "--after", AFTER]
    assert main([*args, "--out", str(out), "--resamples", "1000"]) == 0
    return out


def test_the_compare_page_loads_offline_every_image_no_error_prints_on_a4(
    page: Path,
    chromium: str,  # noqa: F811
) -> None:
    html = (page / compare_page.HTML).read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["'](?!data:image/png;base64,|#)""", html)
    srcs = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', html)
    assert len(srcs) == len(compare_page.PICTURES)
    for name, src in zip(compare_page.PICTURES, srcs, strict=True):
        assert base64.b64decode(src.split(",", 1)[1]) == (page / name).read_bytes(), name
    dev = DevTools(chromium)
    try:
        dev.open_offline(page / compare_page.HTML)
        shown = dev.images()
        assert len(shown) == len(compare_page.PICTURES)
        for complete, w, h, on_page in shown:
            assert complete and w > 1000 and h > 300, (complete, w, h)
            assert 600 < on_page <= 900
        # the zone table fits the text column (as wide as the headings' rules, no wider)
        over = dev.evaluate(
            "document.querySelector('table.compare').getBoundingClientRect().right"
            " - document.querySelector('h2').getBoundingClientRect().right"
        )
        assert over <= 1, f"the zone table sticks out of the text column by {over} px"
        pdf = dev.screenshot_and_pdf(page)
        errors = dev.errors()
    finally:
        dev.ws.close()
    assert errors == [], errors
    boxes = pdf_page_sizes(pdf)
    assert len(boxes) >= 3
    for w, h in boxes:
        assert abs(w - A4_PT[0]) < 3 and abs(h - A4_PT[1]) < 3, (w, h)


def test_the_page_says_what_changed_with_intervals_and_verdicts(page: Path) -> None:
    html = (page / compare_page.HTML).read_text()
    with (page / compare_page.TABLE).open() as fh:
        rows = list(csv.DictReader(fh))
    promo = next(r for r in rows if r["zone"] == "promo" and r["figure"] == "visits_per_100")
    assert promo["verdict"] == "changed" and promo["zone_verdict"] == "changed"
    assert float(promo["rel_lo"]) > 0
    # the plain-language lines, as the issue words them, the promo table's first
    lines = (page / compare_page.SUMMARY).read_text().splitlines()
    assert lines[0].startswith("Promo table: "), lines
    visits = [
        x
        for x in lines
        if re.fullmatch(
            r"Promo table: visits per 100 visitors \d+ → \d+, \+\d+ % "
            r"\(95 % CI \+\d+…\+\d+ %\)",
            x,
        )
    ]
    assert visits, lines
    for x in lines:
        assert f"<li>{x}</li>" in html
    # the table: a row per zone, the changed zones first, each figure before → after
    plan = load_default()
    names = re.findall(r"<tr(?: class=\"changed\")?><td>([^<]+)</td>", html)
    assert sorted(names) == sorted(z.name for z in plan.zones)
    assert names[0] == "Promo table"
    assert html.count("no evidence of change</td>") >= len(plan.zones) - 3
    # verdicts per zone agree between the page and the CSV
    verdict = {r["name"]: r["zone_verdict"] for r in rows}
    for name, v in verdict.items():
        shown = "changed" if f'<tr class="changed"><td>{name}</td>' in html else "no evidence"
        assert v.startswith(shown), name


def test_pictures_one_scale_diverging_difference_labels_clear(page: Path) -> None:
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    rng = np.random.default_rng(1)
    a = rng.gamma(2.0, 1.0, grid.nx * grid.ny)
    fig = planner_figures.pair_figure(plan, grid, (("before", a), ("after", 2 * a)), "t", "s", "u")
    try:
        images = [im for ax in fig.axes for im in ax.images]
        assert len(images) == 2 and len({im.get_clim() for im in images}) == 1
        boxes = planner_figures.text_boxes(fig)
        assert not [
            (x, y) for i, (x, bx) in enumerate(boxes) for y, by in boxes[i + 1 :] if bx.overlaps(by)
        ]
    finally:
        plt.close(fig)
    fig = planner_figures.difference_figure(plan, grid, a - a.mean(), "t", "s", "u")
    try:
        (im,) = [im for ax in fig.axes for im in ax.images]
        lo, hi = im.get_clim()
        assert lo == -hi and im.get_cmap().name == planner_figures.DIVERGING_CMAP
    finally:
        plt.close(fig)
    for name in compare_page.PICTURES:
        with Image.open(page / name) as im:
            assert im.size[0] == round(planner_figures.WIDTH_IN * planner_figures.DPI)


def test_the_store_drawing_is_drawn_under_the_planner_maps(tmp_path: Path) -> None:
    """A floor plan naming a small PNG drawing (scale, origin) gets it under the heat;
    a missing drawing is said, and the map drawn from the plan."""
    src = Path(load_default().source)
    if not src.is_file():
        from importlib import resources

        text = resources.files("heatmap.spatial.data").joinpath("default_store.toml").read_text()
    else:
        text = src.read_text()
    # a 60 × 40 px drawing at 0.5 m a pixel from (0, 0): the 30 × 20 m store, a magenta
    # stripe across its middle (a colour no planner map has)
    px = np.full((40, 60, 3), 255, np.uint8)
    px[18:22, :, :] = (255, 0, 255)
    Image.fromarray(px).save(tmp_path / "store.png")
    plan_file = tmp_path / "plan.toml"
    drawing = '\n[drawing]\nfile = "store.png"\nscale_m_per_px = 0.5\norigin = [0, 0]\n'
    plan_file.write_text(text + drawing)
    plan = load(plan_file)
    art, why = store_drawing.load(plan)
    assert why is None and art is not None
    assert art.extent == (0.0, 30.0, 0.0, 20.0)
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    empty = np.zeros(grid.nx * grid.ny)
    fig = planner_figures.heat_figure(plan, grid, empty, "t", "s", "u")
    out = tmp_path / "map.png"
    fig.savefig(out)
    plt.close(fig)
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # the stripe, faded towards white, shows where the floor is not covered
    magenta = (rgb[..., 0] > 200) & (rgb[..., 1] < 200) & (rgb[..., 2] > 200)
    magenta &= rgb[..., 0] - rgb[..., 1] > 60
    assert magenta.sum() > 500
    rows = np.flatnonzero(magenta.any(axis=1))
    assert rows.max() - rows.min() < 0.2 * rgb.shape[0], "one thin stripe, where it belongs"
    # the same plan without the drawing file: said, and no magenta
    (tmp_path / "store.png").unlink()
    plan_file.write_text(text + drawing + "\n")  # a changed file is read again
    art, why = store_drawing.load(load(plan_file))
    assert art is None and why is not None and "missing" in why
    # a drawing that is neither PNG nor SVG is a one-line floor plan error
    bad = tmp_path / "bad.toml"
    bad.write_text(text + drawing.replace("store.png", "store.pdf"))
    with pytest.raises(Exception, match=r"drawing\.file: .*\.png or \.svg"):
        load(bad)
