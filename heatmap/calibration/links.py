"""Node-to-node links: find each node's beacon among the pseudonyms, gather the
links' statistics, fit exponent, receive gains, wall losses and σ."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from heatmap.calibration.fit import FitReport, penalized_fit, source_with
from heatmap.spatial.radio_model import MIN_DISTANCE_M, RadioModel
from sensing.wire.observation import KIND_MASK, KIND_SHIFT, DeviceKind, Flag

F = NDArray[np.float64]
I64 = NDArray[np.int64]
MIN_LINK_FRAMES = 5
"""a candidate beacon must be heard this often by at least two nodes"""
SELF_HEARD_MAX = 0.02
"""a node may hear its own beacon at most this share of the frames (never, in practice)"""
BEACON_FIT_MAX_RMS_DB = 12.0
"""an assignment of a candidate to a node whose levels fit worse than this is refused"""


def is_node_beacon_flags(flags: I64) -> NDArray[np.bool_]:
    """Frames that can be a node beacon: BLE beacon kind from a public address."""
    kind = (np.asarray(flags) & KIND_MASK) >> KIND_SHIFT
    return (kind == int(DeviceKind.BEACON)) & ((np.asarray(flags) & int(Flag.BLE_RANDOM)) == 0)


@dataclass(frozen=True)
class LinkStats:
    """Node-to-node frames over a period, per (transmitting node i, receiving node j)."""

    heard: F
    """(N, N) frames of i's beacon that j heard"""
    sum_dbm: F
    """(N, N) sum of their RSSI, dBm"""
    sumsq: F
    """(N, N) sum of squared RSSI"""
    sent: F
    """(N,) frames i's beacon sent (estimated: the most any node heard, over 1 - frame loss)"""
    beacon_pid: dict[int, str] = field(default_factory=dict)
    """transmitting node index → pseudonym of its beacon in this period"""

    @property
    def mean_dbm(self) -> F:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.heard > 0, self.sum_dbm / np.maximum(self.heard, 1), np.nan)

    @property
    def n_links(self) -> int:
        return int((self.heard > 0).sum())


def _per_pid_node(
    pid: NDArray[np.str_], node_idx: I64, rssi: F, n_nodes: int
) -> tuple[NDArray[np.str_], F, F, F]:
    key, inv = np.unique(pid, return_inverse=True)
    cnt = np.zeros((len(key), n_nodes))
    s1 = np.zeros((len(key), n_nodes))
    s2 = np.zeros((len(key), n_nodes))
    np.add.at(cnt, (inv, node_idx), 1.0)
    np.add.at(s1, (inv, node_idx), rssi)
    np.add.at(s2, (inv, node_idx), rssi * rssi)
    return key, cnt, s1, s2


def find_node_beacons(
    pid: NDArray[np.str_], node_idx: I64, flags: I64, rssi: F, model: RadioModel
) -> dict[str, int]:
    """Which pseudonym is which node's beacon: {pid: node index}.

    Only frames with beacon-kind flags from a public address are considered.
    For each candidate and node i, the candidate's mean level at the other
    nodes is fitted with the link model of a transmitter at node i (its
    transmit power profiled out); a node that hears the candidate cannot be its
    transmitter. A minimum-cost assignment (Kuhn–Munkres) pairs candidates and
    nodes; pairs that fit worse than ``BEACON_FIT_MAX_RMS_DB`` are dropped.
    """
    n = model.n_nodes
    cand = is_node_beacon_flags(flags) & (node_idx >= 0)
    if not cand.any():
        return {}
    key, cnt, s1, _ = _per_pid_node(pid[cand], node_idx[cand], rssi[cand], n)
    ok = (cnt >= MIN_LINK_FRAMES).sum(axis=1) >= 2
    key, cnt, s1 = key[ok], cnt[ok], s1[ok]
    if not len(key):
        return {}
    mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), np.nan)
    mu = _link_mean_default(model)  # (N tx, N rx) up to the transmit power
    cost = np.full((len(key), n), 1e6)
    for i in range(n):
        heard_self = cnt[:, i] > SELF_HEARD_MAX * cnt.max(axis=1)
        w = np.where(np.isnan(mean), 0.0, cnt)
        w[:, i] = 0.0
        res = np.where(w > 0, np.nan_to_num(mean) - mu[i][None, :], 0.0)
        tx = (w * res).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
        rms = np.sqrt((w * (res - tx[:, None]) ** 2).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9))
        cost[:, i] = np.where(heard_self, 1e6, rms)
    rows, cols = linear_sum_assignment(cost)
    return {
        key[r].item(): int(c)
        for r, c in zip(rows, cols, strict=True)
        if cost[r, c] <= BEACON_FIT_MAX_RMS_DB
    }


def _link_mean_default(model: RadioModel) -> F:
    """(N, N) model level of node i's beacon at node j, less the transmit power."""
    d, x = model.link_geometry()
    g = (
        np.zeros(model.n_nodes)
        if "ble" not in model.p0
        else model.p0["ble"] - model.p0["ble"].mean()
    )
    loss = x @ model.wall_attenuation if len(model.walls) else 0.0
    return (
        g[None, :] - 10 * model.exponent[None, :] * np.log10(np.maximum(d, MIN_DISTANCE_M)) - loss
    )


def link_stats(
    pid: NDArray[np.str_],
    node_idx: I64,
    rssi: F,
    beacons: dict[str, int],
    n_nodes: int,
    frame_loss: float = 0.05,
) -> LinkStats:
    """Sufficient statistics of the node-to-node links from observation rows."""
    heard = np.zeros((n_nodes, n_nodes))
    s1 = np.zeros((n_nodes, n_nodes))
    s2 = np.zeros((n_nodes, n_nodes))
    for p, i in beacons.items():
        m = (pid == p) & (node_idx >= 0)
        np.add.at(heard[i], node_idx[m], 1.0)
        np.add.at(s1[i], node_idx[m], rssi[m])
        np.add.at(s2[i], node_idx[m], rssi[m] ** 2)
    np.fill_diagonal(heard, 0.0)
    np.fill_diagonal(s1, 0.0)
    np.fill_diagonal(s2, 0.0)
    sent = np.ceil(heard.max(axis=1) / max(1.0 - frame_loss, 0.5))
    return LinkStats(heard, s1, s2, sent, {i: p for p, i in beacons.items()})


def fit_links(stats: LinkStats, model: RadioModel) -> tuple[RadioModel, FitReport]:
    """Fit exponent, receive gains, wall losses and σ to node-to-node links.

    Parameters θ = (n, g_1..g_N, t_1..t_N, a_1..a_W): node i's beacon arrives at
    node j with μ_ij = t_i + g_j - 10 n log10(d_ij) - Σ_w a_w [link crosses w]
    (d the 3-D node-to-node distance). The phone levels become
    p0[band, j] = (band level) + g_j, so the mean over nodes of each band's p0 is
    kept (the phone level is the population's business, :func:`fit_population`).
    Priors: n ~ N(current, 0.7²), g_j ~ N(0, 3²), t_i flat-ish, walls ~
    N(current, max(2, half of it)²).
    """
    n_nodes = model.n_nodes
    d, x = model.link_geometry()
    ii, jj = np.nonzero(~np.eye(n_nodes, dtype=bool) & (stats.sent[:, None] > 0))
    k = stats.heard[ii, jj]
    s1, s2 = stats.sum_dbm[ii, jj], stats.sumsq[ii, jj]
    miss = np.maximum(stats.sent[ii] - k, 0.0)
    use = (k > 0) | (miss > 0)
    ii, jj, k, s1, s2, miss = ii[use], jj[use], k[use], s1[use], s2[use], miss[use]
    n_w = len(model.walls)
    ld = 10 * np.log10(np.maximum(d[ii, jj], MIN_DISTANCE_M))
    design = np.zeros((len(ii), 1 + 2 * n_nodes + n_w))
    design[:, 0] = -ld
    design[np.arange(len(ii)), 1 + jj] = 1.0
    design[np.arange(len(ii)), 1 + n_nodes + ii] = 1.0
    if n_w:
        design[:, 1 + 2 * n_nodes :] = -x[ii, jj]
    n0 = float(np.mean(model.exponent))
    mean_heard = np.where(k > 0, s1 / np.maximum(k, 1), np.nan)
    t0 = np.nanmedian(mean_heard + n0 * ld) if np.isfinite(mean_heard).any() else -60.0
    g_now = model.p0["ble"] - model.p0["ble"].mean() if "ble" in model.p0 else np.zeros(n_nodes)
    theta0 = np.concatenate([[n0], g_now, np.full(n_nodes, t0), model.wall_attenuation])
    prior_sd = np.concatenate(
        [
            [0.7],
            np.full(n_nodes, 3.0),
            np.full(n_nodes, 20.0),
            np.maximum(2.0, 0.5 * model.wall_attenuation),
        ]
    )
    if not len(ii) or k.sum() < 20:
        return model, FitReport(
            "node links",
            len(ii),
            int(k.sum()),
            float("nan"),
            n0,
            model.sigma_db,
            {},
            ["too few node-to-node frames: model kept"],
        )
    th, sigma = penalized_fit(
        design,
        theta0,
        prior_sd,
        k,
        s1,
        s2,
        miss,
        np.zeros(len(ii)),
        model.sigma_db,
        model.detection_floor_dbm,
        model.frame_loss,
    )
    n_fit = float(np.clip(th[0], 1.2, 5.0))
    g = th[1 : 1 + n_nodes]
    g = g - g.mean()
    walls = np.maximum(th[1 + 2 * n_nodes :], 0.0)
    p0 = {b: v.mean() + g for b, v in model.p0.items()}
    new = model.replace(
        p0=p0,
        exponent=np.full(n_nodes, n_fit),
        sigma_db=sigma,
        source=source_with(model.source, "node links"),
    ).with_walls(walls)
    mu = design @ th
    heard = k > 0
    rms = float(np.sqrt(np.mean((mean_heard[heard] - mu[heard]) ** 2))) if heard.any() else np.nan
    return new, FitReport(
        "node links",
        len(ii),
        int(k.sum()),
        rms,
        n_fit,
        sigma,
        {i: float(v) for i, v in enumerate(walls)},
    )
