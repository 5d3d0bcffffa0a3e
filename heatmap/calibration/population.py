"""The phone population's level, and the whole self-calibration of a store period."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.calibration.fit import FitReport, source_with
from heatmap.calibration.links import find_node_beacons, fit_links, link_stats
from heatmap.calibration.motion_fit import calibrate_motion
from heatmap.localizers.base import Windows
from heatmap.spatial.motion import MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.runtime.process_memory import release_free_memory

F = NDArray[np.float64]
I64 = NDArray[np.int64]


def fit_population(
    model: RadioModel,
    band: str,
    device_offsets_db: F,
    min_devices: int = 20,
) -> tuple[RadioModel, dict[str, float]]:
    """Re-centre a band's phone level on the population: p0 += median device offset.

    ``device_offsets_db``: one estimated transmit offset per device (from a
    localization run, :attr:`~heatmap.localizers.base.Posterior.offset_db`).
    The offset prior's σ becomes the devices' robust spread (MAD × 1.4826),
    within 2..10 dB (BLE only: it sets the one prior all bands share). With
    fewer than ``min_devices`` devices nothing changes.
    """
    off = np.asarray(device_offsets_db, float)
    off = off[np.isfinite(off)]
    if len(off) < min_devices:
        return model, {"devices": float(len(off))}
    shift = float(np.median(off))
    spread = float(np.clip(1.4826 * np.median(np.abs(off - shift)), 2.0, 10.0))
    p0 = dict(model.p0)
    p0[band] = p0[band] + shift
    if band == "wifi24":
        for b in ("wifi5", "wifi6"):
            if b in p0:
                p0[b] = p0[b] + shift
    new = model.replace(
        p0=p0,
        offset_sigma_db=spread if band == "ble" else model.offset_sigma_db,
        source=source_with(model.source, f"population ({band})"),
    )
    return new, {"devices": float(len(off)), "shift_db": shift, "offset_sigma_db": spread}


def calibrate_population(
    model: RadioModel,
    win: Windows,
    grid: WalkableGrid,
    band: str = "ble",
    rng: np.random.Generator | None = None,
    max_windows: int = 2500,
    min_windows: int = 24,
) -> tuple[RadioModel, dict[str, float]]:
    """Localize a sample of long tracks and re-centre the band's level on their offsets.

    Devices with at least ``min_windows`` windows (a few minutes: their offset
    is well determined) are sampled with ``rng`` until ``max_windows`` windows;
    see :func:`fit_population`.
    """
    from heatmap.localizers import grid_posterior

    rows = np.flatnonzero(win.band == band)
    if not len(rows):
        return model, {"devices": 0.0}
    pid = win.pid[rows]
    _, start, count = np.unique(pid, return_index=True, return_counts=True)
    long_ = np.flatnonzero(count >= min_windows)
    gen = rng or np.random.default_rng(0)
    gen.shuffle(long_)
    take: list[int] = []
    n = 0
    for k in long_:
        if n + count[k] > max_windows and take:
            break
        take.append(int(k))
        n += int(count[k])
    if not take:
        return model, {"devices": 0.0}
    idx = np.sort(np.concatenate([rows[start[k] : start[k] + count[k]] for k in take]))
    post = grid_posterior.locate(win.take(idx), model, grid)
    assert post.offset_db is not None
    _, first = np.unique(win.pid[idx], return_index=True)
    offsets = post.offset_db[first]
    del post
    release_free_memory()  # the sample's posteriors, before localizing the whole period
    return fit_population(model, band, offsets)


@dataclass(frozen=True)
class StoreCalibration:
    """The outcome of :func:`calibrate_store` for one analysis period."""

    model: RadioModel
    windows: Windows
    """the phones' windows (node beacons removed)"""
    beacons: dict[Any, int]
    """pseudonym → node index of the node beacons found"""
    links: FitReport | None
    population: dict[str, float]
    motion: MotionParams = dataclasses.field(default_factory=MotionParams)
    """the motion model, its dwelling diffusion fitted to the period's tracks"""
    motion_fit: dict[str, float] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """JSON-ready description (no pseudonyms)."""
        out: dict[str, object] = {
            "node_beacons_found": sorted(self.model.node_ids[i] for i in self.beacons.values()),
            "population": self.population,
            "model": self.model.to_dict(),
            "motion": {**dataclasses.asdict(self.motion), "fit": self.motion_fit},
        }
        if self.links is not None:
            out["links"] = {
                "links": self.links.links,
                "frames": self.links.frames,
                "rms_db": self.links.rms_db,
                "exponent": self.links.exponent,
                "sigma_db": self.links.sigma_db,
                "notes": self.links.notes,
            }
        return out


def calibrate_links(
    model: RadioModel, pid: NDArray[Any], node_idx: I64, flags: I64, rssi: F
) -> tuple[RadioModel, dict[Any, int], FitReport | None]:
    """Find the node beacons among observation rows and fit the radio model to their links.

    Returns the model, {beacon pseudonym (or code): node index} and the fit
    report (None when no beacon was found). Rows may be all rows or only the
    beacon candidates (:func:`heatmap.aggregator.obs_reader.read_observations`).
    """
    beacons = find_node_beacons(pid, node_idx, flags, rssi, model)
    if not beacons:
        return model, {}, None
    stats = link_stats(pid, node_idx, rssi, beacons, model.n_nodes, model.frame_loss)
    model, fit = fit_links(stats, model)
    return model, beacons, fit


def calibrate_phones(
    model: RadioModel, win: Windows, grid: WalkableGrid, rng: np.random.Generator | None = None
) -> tuple[RadioModel, dict[str, float]]:
    """Re-centre the BLE and Wi-Fi phone levels on samples of long tracks."""
    model, pop = calibrate_population(model, win, grid, "ble", rng)
    # Wi-Fi: probe bursts come a minute apart and most phones re-randomize their
    # address per burst, so only the few long tracks (old Android) inform it
    model, pop_wifi = calibrate_population(
        model, win, grid, "wifi24", rng, max_windows=1500, min_windows=6
    )
    pop.update({f"wifi24_{k}": v for k, v in pop_wifi.items()})
    return model, pop


def calibrate_store(
    model: RadioModel,
    grid: WalkableGrid,
    t_ms: I64,
    node_idx: I64,
    pid: NDArray[np.str_],
    rssi: F,
    band: NDArray[np.str_],
    flags: I64,
    window_ms: int = 5000,
    rng: np.random.Generator | None = None,
    links: bool = True,
    population: bool = True,
    band_names: NDArray[np.str_] | None = None,
) -> StoreCalibration:
    """Self-calibrate on a period's observations and return the phones' windows.

    Node beacons are found and fitted (:func:`find_node_beacons`,
    :func:`fit_links`), removed from the observations, the rest grouped into
    windows, the BLE phone level re-centred on a sample of long tracks
    (:func:`calibrate_population`) and the motion model's dwelling diffusion
    fitted to another (:func:`calibrate_motion`), both with ``population``. Rows
    with ``node_idx`` < 0 are ignored.
    ``pid`` may be integer codes of the pseudonyms, ``band`` codes into
    ``band_names`` (see :mod:`heatmap.aggregator.obs_reader`).
    """
    from heatmap.localizers.base import make_windows

    ok = node_idx >= 0
    beacons: dict[Any, int] = {}
    fit: FitReport | None = None
    if links:
        model, beacons, fit = calibrate_links(model, pid[ok], node_idx[ok], flags[ok], rssi[ok])
    phones = ok & ~np.isin(pid, list(beacons))
    win = make_windows(
        t_ms[phones],
        node_idx[phones],
        pid[phones],
        rssi[phones],
        band[phones],
        model.n_nodes,
        window_ms,
        band_names,
    )
    pop: dict[str, float] = {}
    motion, motion_fit = MotionParams(), dict[str, float]()
    if population:
        model, pop = calibrate_phones(model, win, grid, rng)
        motion, motion_fit = calibrate_motion(model, win, grid, rng)
    return StoreCalibration(model, win, beacons, fit, pop, motion, motion_fit)
