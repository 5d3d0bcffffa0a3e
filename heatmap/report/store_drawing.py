"""The store's own drawing under the planner's pictures (the floor plan's ``[drawing]``).

A floor plan may name a PNG or SVG drawing of the store, with its scale (metres per
pixel, or per SVG user unit) and where its bottom-left corner lies in the plan's
metres (DESIGN: "the store's own drawing … rendered as the background"). The
runtime floor plan (:class:`~heatmap.spatial.floorplan.FloorPlan`) does not carry
it, so it is read here from the plan's file (``plan.source``) through the same
schema (:class:`~heatmap.spatial.floorplan_model.DrawingSpec`). An SVG is
rasterized with CairoSVG when that is installed; without it, or when the file is
missing or unreadable, the picture is drawn from the plan's geometry as before and
the reason is returned for the page's notes (a report does not fail for its
background).
"""

from __future__ import annotations

import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.floorplan_model import DrawingSpec

MAX_SIDE_PX = 4000
"""a drawing is read at most this many pixels on a side (larger ones are reduced)"""
FADE = 0.55
"""how far the drawing is faded towards white, so the heat over it stays readable"""


@dataclass(frozen=True)
class Drawing:
    """An RGB(A) image and where it lies in plan metres."""

    image: NDArray[np.float64]
    """(rows, cols, 3 or 4) in 0..1, row 0 at the top"""
    extent: tuple[float, float, float, float]
    """x0, x1, y0, y1 in plan metres"""
    file: Path


def spec_of(plan: FloorPlan) -> tuple[DrawingSpec, Path] | None:
    """The plan file's ``[drawing]`` and the drawing's path, or None."""
    src = Path(plan.source)
    if not src.is_file():
        return None
    try:
        raw = tomllib.loads(src.read_text(encoding="utf-8")).get("drawing")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if raw is None:
        return None
    spec = DrawingSpec.model_validate(raw)
    path = Path(spec.file)
    return spec, path if path.is_absolute() else src.parent / path


def load(plan: FloorPlan) -> tuple[Drawing | None, str | None]:
    """The plan's drawing, or None and why not (None, None: the plan names none)."""
    try:
        found = spec_of(plan)
    except ValueError as e:
        return None, f"the floor plan's [drawing] is not used: {str(e).splitlines()[0]}"
    if found is None:
        return None, None
    spec, path = found
    if not path.is_file():
        return None, f"the store's drawing {path} is missing: drawn from the plan instead"
    try:
        rgba, per_px = _read(path, spec.scale_m_per_px)
    except (OSError, ValueError) as e:
        return None, f"the store's drawing {path} could not be read ({e}): drawn from the plan"
    rows, cols = rgba.shape[:2]
    x0, y0 = spec.origin
    image = FADE + (1 - FADE) * rgba[..., :3]
    if rgba.shape[2] == 4:
        image = np.dstack([image, rgba[..., 3]])
    return Drawing(image, (x0, x0 + cols * per_px, y0, y0 + rows * per_px), path), None


def _read(path: Path, scale: float) -> tuple[NDArray[np.float64], float]:
    """The image as floats in 0..1 and metres per pixel of it (after any reduction)."""
    from PIL import Image

    if path.suffix.lower() == ".svg":
        try:
            import cairosvg  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise ValueError("an SVG drawing needs CairoSVG (pip install cairosvg)") from None
        png = cairosvg.svg2png(url=str(path))
        im = Image.open(io.BytesIO(png))
    else:
        im = Image.open(path)
    with im:
        im.load()
        im = im.convert("RGBA")
        side = max(im.size)
        if side > MAX_SIDE_PX:
            f = MAX_SIDE_PX / side
            scale /= f
            im = im.resize((max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f))))
        return np.asarray(im, dtype=float) / 255.0, scale
