"""The layout planner's page (issue 19), opened in a real headless Chromium.

``footfall report`` from the aggregates of the demo's real pipeline writes
``report.html``; Chromium (Debian's ``chromium``, driven over the DevTools protocol on
loopback) loads it from disk with the network off: every image must load from the
page itself, no console message may be an error, and printed it must come out as A4
pages. The pictures are checked for what a planner stumbles on: labels printed over
each other, hours on different scales or drawn empty, node markers.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from heatmap.report import layout_resolution, planner_figures, planner_report
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from sensing.cli.main import main

from chromium_page import A4_PT, DevTools, chromium, pdf_page_sizes  # noqa: F401  (a fixture)
from conftest import DemoRun


@pytest.fixture(scope="module")
def page(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planner's report of the demo's day (its half hour), against its truth."""
    out = tmp_path_factory.mktemp("planner")
    db = demo_run.out / "aggregator" / "store.db"
    args = ["report", "--db", str(db), "--truth", str(demo_run.out / "sim" / "truth")]
    assert main([*args, "--day", "2026-11-20", "--out", str(out), "-q"]) == 0
    return out


pytestmark = pytest.mark.slow


def test_the_page_loads_offline_in_chromium_every_image_shown_no_error_and_prints_on_a4(
    page: Path,
    chromium: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    html = (page / planner_report.HTML).read_text()
    # self-contained: no file, script or address outside the page
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["'](?!data:image/png;base64,|#)""", html)
    srcs = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', html)
    rep = json.loads((page / "report.json").read_text())
    with (page / "table_flows.csv").open() as fh:
        moves = len(fh.readlines()) - 1
    # the heatmap; the hours if one was open; the moves if any pair reached k devices
    pictures = 1 + bool(rep["hours_open"]) + bool(moves)
    assert len(srcs) == pictures
    if not moves:
        assert "No zone-to-zone move was made by k or more devices" in html
    dev = DevTools(chromium)
    try:
        dev.open_offline(page / planner_report.HTML)
        shown = dev.images()
        assert len(shown) == pictures
        for complete, w, h, on_page in shown:
            assert complete and w > 1000 and h > 300, (complete, w, h)
            assert 600 < on_page <= 900, "drawn across the text column"
        pdf = dev.screenshot_and_pdf(page)
        errors = dev.errors()
    finally:
        dev.ws.close()
    assert errors == [], errors
    with Image.open(page / "screenshot.png") as im:
        assert im.size[0] == 900 and im.size[1] > 1500
    # printed: A4 pages (the page's @page rule), the zones and the moves on pages of their own
    boxes = pdf_page_sizes(pdf)
    assert len(boxes) >= 3
    for w, h in boxes:
        assert abs(w - A4_PT[0]) < 3 and abs(h - A4_PT[1]) < 3, (w, h)


def test_the_page_says_what_a_planner_acts_on(page: Path) -> None:
    html = (page / planner_report.HTML).read_text()
    rep = json.loads((page / "report.json").read_text())
    for words in (
        "visitors (door counts)",
        "capture rate",
        "share of visitor time",
        "visits per 100 visitors",
        "reach",
        "median stay",
        f"This node layout resolves about <strong>{rep['resolution_m']:g} m</strong>",
    ):
        assert words in html, words
    # the resolution is the plan's own CRB, the same `footfall plan` computes
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    assert rep["resolution_m"] == layout_resolution.resolution(plan, grid).stated_m
    # against the truth, r at the stated resolution beside r at 1 m cells
    t = rep["truth"]
    # (half an hour: both low, docs/report.md; the goal is asserted in test_live_aggregator)
    assert t["goal"] == 0.9 and t["of"] == "shoppers"
    assert f"{t['r_stated']:.2f}</strong> at that resolution" in html
    assert f"{t['r_1m']:.2f} at 1 m cells" in html
    # every table is a CSV too, suppressed figures written as such, never 0
    for name in planner_report.TABLES:
        with (page / f"table_{name}.csv").open() as fh:
            rows = list(csv.reader(fh))
        assert rows and rows[0], name
    with (page / "table_zones.csv").open() as fh:
        zones = list(csv.DictReader(fh))
    assert {z["zone"] for z in zones} == {z.name for z in plan.zones}
    shares = [float(z["share_of_visitor_time"]) for z in zones]
    assert abs(sum(shares) - 1) < 0.01
    with (page / "table_summary.csv").open() as fh:
        summary = dict(csv.reader(fh))
    # the people inside on average over the open hours, never above the most at once
    mean = float(summary["people in the store, on average while open"])
    assert 0 < mean <= float(summary["people in the store, most at once"])
    with (page / "table_entrance.csv").open() as fh:
        entrance = list(csv.DictReader(fh))
    if not entrance:  # no move out of the entrance by k devices: said, not drawn as none
        assert 'Where people go from Entrance: <span class="suppressed">' in html
    # hours: every hour of the day either drawn (open) or named as skipped
    opened = {h["hour"] for h in rep["hours_open"]}
    assert opened and len(opened) < 24
    skipped = rep["hours_skipped"]
    covered = sum(int(s[6:8] or 24) - int(s[:2]) for s in skipped) + len(opened)
    assert covered == 24, (opened, skipped)


def _overlaps(fig: Any) -> list[tuple[str, str]]:
    boxes = planner_figures.text_boxes(fig)
    return [
        (a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1 :] if ba.overlaps(bb)
    ]


def test_planner_pictures_labels_never_overprint_no_node_markers_one_scale(
    page: Path, tmp_path: Path
) -> None:
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    rng = np.random.default_rng(3)
    values = rng.gamma(1.0, 1.0, grid.nx * grid.ny) * layout_resolution.floor_mask(grid)
    fig = planner_figures.heat_figure(plan, grid, values, "t", "s", "unit")
    try:
        assert _overlaps(fig) == []
        texts = {t for t, _ in planner_figures.text_boxes(fig)}
        assert {z.name for z in plan.zones} <= texts  # all fit here: none went to the legend
        # no node marker (the installer's triangles) in a planner picture
        markers = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "^"]
        assert markers == []
        # the title band is above the map: no axes reach into it
        top = max(ax.get_position().y1 for ax in fig.axes)
        assert top < 1 - 0.4 / fig.get_figheight()
    finally:
        plt.close(fig)
    # a crowded plan: many small zones around one point still overprint nothing
    crowded = [
        planner_figures.Label(15.0 + 0.2 * i, 10.0, f"zone {i} long name") for i in range(12)
    ]
    fig = planner_figures.heat_figure(plan, grid, values, "t", "s", "unit")
    try:
        taken = [b for _, b in planner_figures.text_boxes(fig)]  # the zones' labels
        legend = planner_figures.place_labels(fig.axes[0], crowded, taken)
        assert _overlaps(fig) == []
        assert legend, "what found no spot went to the legend as a number"
    finally:
        plt.close(fig)
    # hours: one map per open hour and one colour bar for all of them
    rep = json.loads((page / "report.json").read_text())
    maps = [(h["hour"], values * (i + 1)) for i, h in enumerate(rep["hours_open"])]
    fig = planner_figures.hours_figure(plan, grid, maps, "t", "s", "people")
    try:
        images = [im for ax in fig.axes for im in ax.images]
        assert len(images) == len(maps)
        assert len({im.get_clim() for im in images}) == 1
        bars = [ax for ax in fig.axes if not ax.images and ax.collections]
        assert len(bars) == 1
    finally:
        plt.close(fig)
    for name in planner_report.PICTURES:
        if not (page / name).exists():
            continue
        with Image.open(page / name) as im:
            assert im.size[0] == round(planner_figures.WIDTH_IN * planner_figures.DPI)


def test_a_suppressed_period_leaves_a_page_saying_so_and_no_picture(tmp_path: Path) -> None:
    for name in (*planner_report.PICTURES, "table_zones.csv"):
        (tmp_path / name).write_bytes(b"an earlier period's")
    planner_report.write_suppressed_html("Demo Store: layout report", "a quiet hour", 5, tmp_path)
    html = (tmp_path / planner_report.HTML).read_text()
    assert "Fewer than k = 5 visitors" in html and "<img" not in html
    assert not any((tmp_path / n).exists() for n in planner_report.PICTURES)
    assert not (tmp_path / "table_zones.csv").exists()


def test_docstring_examples() -> None:
    import doctest

    for mod in (planner_figures, planner_report, layout_resolution):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
