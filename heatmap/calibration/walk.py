"""A beacon walk at known points: walk files, the walking device's observations,
the per-node fit and the smooth correction map."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from firmware_bridge.errors import ConfigError
from heatmap.calibration.fit import FitReport, penalized_fit, source_with
from heatmap.spatial.radio_model import MIN_DISTANCE_M, RadioModel, ResidualMap

F = NDArray[np.float64]
I64 = NDArray[np.int64]


def fit_walk(
    model: RadioModel,
    xy: F,
    rssi: F,
    band: str = "ble",
    keep_level: bool = True,
    per_node_exponent: bool = True,
    counts: F | None = None,
    sumsq: F | None = None,
    sent: F | None = None,
) -> tuple[RadioModel, FitReport]:
    """Fit per-node level and exponent, wall losses and σ to a beacon walk at known points.

    ``xy``: (M, 2) positions of the walking transmitter (m); ``rssi``: (M, N)
    RSSI per point and node, dBm (NaN: not heard) — one frame each, or, with
    ``counts`` (M, N) frames heard, ``sumsq`` (M, N) their Σ r² and ``sent`` (M,)
    frames sent, the mean of several.
    ``keep_level``: keep the band's mean level (the walk's transmitter is one
    device, not the population); False adopts the walk device's level (when
    the same device is then localized, as in the Kolakowski benchmark).
    """
    n_nodes = model.n_nodes
    m = len(xy)
    heard = ~np.isnan(rssi) if counts is None else counts > 0
    jj = np.tile(np.arange(n_nodes), m)
    k = heard.astype(float).ravel() if counts is None else counts.ravel().astype(float)
    r = np.where(heard, rssi, 0.0).ravel()
    s1 = r * k
    s2 = r * r if sumsq is None else np.where(heard, sumsq, 0.0).ravel()
    tot = np.ones(m) if sent is None else np.asarray(sent, float)
    miss = np.maximum(np.repeat(tot, n_nodes) - k, 0.0)
    d = np.maximum(model.distance(xy), MIN_DISTANCE_M)
    ld = 10 * np.log10(d).ravel()
    x = model.crossings(xy).reshape(m * n_nodes, -1)
    n_w = len(model.walls)
    # θ = (p0_1..p0_N, n_1..n_N, a_1..a_W)
    design = np.zeros((m * n_nodes, 2 * n_nodes + n_w))
    rows = np.arange(m * n_nodes)
    design[rows, jj] = 1.0
    design[rows, n_nodes + jj] = -ld
    if n_w:
        design[:, 2 * n_nodes :] = -x
    theta0 = np.concatenate([model.p0[band], model.exponent, model.wall_attenuation])
    prior_sd = np.concatenate(
        [
            np.full(n_nodes, 15.0),
            np.full(n_nodes, 0.5 if per_node_exponent else 1e-3),
            np.maximum(2.0, 0.5 * model.wall_attenuation),
        ]
    )
    th, sigma = penalized_fit(
        design,
        theta0,
        prior_sd,
        k,
        s1,
        s2,
        miss,
        np.zeros(len(k)),
        model.sigma_db,
        model.detection_floor_dbm,
        model.frame_loss,
    )
    p0_walk = th[:n_nodes]
    expo = np.clip(th[n_nodes : 2 * n_nodes], 1.2, 5.0)
    walls = np.maximum(th[2 * n_nodes :], 0.0)
    if keep_level:
        shift = p0_walk - p0_walk.mean()
        p0 = {b: v.mean() + shift for b, v in model.p0.items()}
    else:
        delta = p0_walk - model.p0[band]
        p0 = {b: v + delta for b, v in model.p0.items()}
    new = model.replace(
        p0=p0, exponent=expo, sigma_db=sigma, source=source_with(model.source, "beacon walk")
    ).with_walls(walls)
    mu = (design @ th).reshape(m, n_nodes)
    res = np.where(heard, rssi - mu, np.nan)
    rms = float(np.sqrt(np.nanmean(res**2))) if heard.any() else float("nan")
    return new, FitReport(
        "beacon walk",
        int(heard.sum()),
        int(heard.sum()),
        rms,
        float(np.mean(expo)),
        sigma,
        {i: float(v) for i, v in enumerate(walls)},
    )


def residual_map(
    model: RadioModel,
    xy: F,
    rssi: F,
    band: str = "ble",
    cell_m: float = 0.25,
    bandwidth_m: float = 0.5,
    prior_frames: float = 4.0,
    bounds: tuple[float, float, float, float] | None = None,
    counts: F | None = None,
) -> ResidualMap:
    """A smooth per-node correction learnt from a walk's residuals (kernel regression).

    At each raster point: Σ_i w_i k_i r_i / (Σ_i w_i k_i + ``prior_frames``), with
    Gaussian weights of ``bandwidth_m`` (Nadaraya–Watson, shrunk to 0 where the
    walk has fewer than a few frames nearby); k_i the frames behind the mean
    ``rssi`` (default 1). Missed frames are left out.
    """
    base = model.replace(correction=None)
    res = rssi - base.mean_rssi(xy, band)
    x0, y0, x1, y1 = bounds or (
        float(xy[:, 0].min()) - 1,
        float(xy[:, 1].min()) - 1,
        float(xy[:, 0].max()) + 1,
        float(xy[:, 1].max()) + 1,
    )
    nx = int(np.ceil((x1 - x0) / cell_m)) + 1
    ny = int(np.ceil((y1 - y0) / cell_m)) + 1
    gx = x0 + np.arange(nx) * cell_m
    gy = y0 + np.arange(ny) * cell_m
    wx = np.exp(-0.5 * ((gx[:, None] - xy[None, :, 0]) / bandwidth_m) ** 2)  # (nx, M)
    wy = np.exp(-0.5 * ((gy[:, None] - xy[None, :, 1]) / bandwidth_m) ** 2)  # (ny, M)
    heard = ~np.isnan(res)
    w = heard.astype(float) if counts is None else np.where(heard, counts, 0.0)
    r0 = np.where(heard, res, 0.0) * w
    num = np.einsum("ym,xm,mn->yxn", wy, wx, r0, optimize=True)
    den = np.einsum("ym,xm,mn->yxn", wy, wx, w, optimize=True)
    return ResidualMap(x0, y0, cell_m, num / (den + prior_frames))


@dataclass(frozen=True)
class WalkPoint:
    """The walking transmitter stood at (x, y) from t0 to t1."""

    t0_ms: int
    t1_ms: int
    x: float
    y: float


def load_walk(path: str | Path) -> list[WalkPoint]:
    """A beacon-walk file: CSV ``t_start,t_end,x,y`` (ISO 8601 with zone, or epoch ms; m).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "walk.csv")
    >>> _ = open(p, "w").write("t_start,t_end,x,y\\n1700000000000,1700000030000,2.5,4\\n")
    >>> load_walk(p)[0].x
    2.5
    """
    p = Path(path)
    try:
        rows = list(csv.DictReader(p.open(newline="")))
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: no such walk file") from e
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            t0, t1 = parse_time_ms(r["t_start"]), parse_time_ms(r["t_end"])
            x, y = float(r["x"]), float(r["y"])
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{p}:{i}: expected t_start,t_end,x,y ({e})") from e
        if t1 <= t0:
            raise ConfigError(f"{p}:{i}: t_end must be after t_start")
        out.append(WalkPoint(t0, t1, x, y))
    if not out:
        raise ConfigError(f"{p}: no walk points")
    return out


def parse_time_ms(v: str) -> int:
    v = v.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        raise ValueError(f"time {v!r} needs a UTC offset")
    return int(dt.timestamp() * 1000)


def find_walk_pid(
    points: list[WalkPoint], t_ms: I64, pid: NDArray[np.str_], exclude: set[str]
) -> str | None:
    """The pseudonym heard during the most walk points (then the most frames), not excluded."""
    score: dict[str, tuple[int, int]] = {}
    for wp in points:
        m = (t_ms >= wp.t0_ms) & (t_ms < wp.t1_ms)
        keys, n = np.unique(pid[m], return_counts=True)
        for k, c in zip(keys, n, strict=True):
            a, b = score.get(str(k), (0, 0))
            score[str(k)] = (a + 1, b + int(c))
    best = sorted(((v, k) for k, v in score.items() if k not in exclude), reverse=True)
    return best[0][1] if best else None


def walk_observations(
    points: list[WalkPoint],
    t_ms: I64,
    node_idx: I64,
    pid: NDArray[np.str_],
    rssi: F,
    n_nodes: int,
    walk_pid: str,
    frame_loss: float = 0.05,
) -> tuple[F, F, F, F, F]:
    """(xy, mean RSSI, frames heard, Σ r², frames sent) per walk point and node."""
    m = len(points)
    xy = np.array([[p.x, p.y] for p in points])
    k = np.zeros((m, n_nodes))
    s1 = np.zeros((m, n_nodes))
    s2 = np.zeros((m, n_nodes))
    sel = (pid == walk_pid) & (node_idx >= 0)
    for i, wp in enumerate(points):
        r = sel & (t_ms >= wp.t0_ms) & (t_ms < wp.t1_ms)
        np.add.at(k[i], node_idx[r], 1.0)
        np.add.at(s1[i], node_idx[r], rssi[r])
        np.add.at(s2[i], node_idx[r], rssi[r] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(k > 0, s1 / np.maximum(k, 1), np.nan)
    sent = np.ceil(k.max(axis=1) / max(1 - frame_loss, 0.5))
    return xy, mean, k, s2, sent
