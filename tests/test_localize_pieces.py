"""Localization pieces on cases with known answers: noise-free ranging, a wall that
must block motion, non-detection pulling the posterior away, the device offset,
and forward–backward checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from heatmap.localizers import get
from heatmap.localizers.base import Windows
from heatmap.localizers.likelihood import GridLikelihood
from heatmap.localizers.trilateration import nelder_mead_batch
from heatmap.spatial.floorplan import FloorPlan, load_default, parse
from heatmap.spatial.motion import MotionModel, MotionParams, generator
from heatmap.spatial.motion_smoothing import log_evidence, smooth_batch
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid


def room(wall_gap: bool = True) -> FloorPlan:
    """12 × 8 m, a partition at x = 6 from y = 0 to 6.5 (door gap above), 4 nodes."""
    return parse(
        {
            "store": {"id": "room"},
            "outline": {"points": [[0, 0], [12, 0], [12, 8], [0, 8]]},
            "walls": [
                {"id": "part", "points": [[6, 0], [6, 6.5 if wall_gap else 8]], "attenuation_db": 6}
            ],
            "nodes": [
                {"id": "a", "x": 1.5, "y": 1.5, "z": 3.0},
                {"id": "b", "x": 10.5, "y": 1.5, "z": 3.0},
                {"id": "c", "x": 1.5, "y": 6.5, "z": 3.0},
                {"id": "d", "x": 10.5, "y": 6.5, "z": 3.0},
            ],
        }
    )


def windows_at(
    model: RadioModel, xy: np.ndarray, frames: int, offset_db: float = 0.0, t_step_ms: int = 5000
) -> Windows:
    """Noise-free windows: every node hears ``frames`` frames at exactly its mean level."""
    mu = model.mean_rssi(xy, "ble") + offset_db
    n = len(xy)
    return Windows(
        np.full(n, "p"),
        np.arange(n, dtype=np.int64) * t_step_ms,
        np.full(n, "ble"),
        mu,
        np.full(mu.shape, float(frames)),
        np.full(n, frames, np.int64),
        5000,
    )


@pytest.fixture(scope="module")
def plan() -> FloorPlan:
    return room()


@pytest.fixture(scope="module")
def grid(plan: FloorPlan) -> WalkableGrid:
    return WalkableGrid.build(plan, cell_m=0.5)


def test_noise_free_ranging_is_exact(plan: FloorPlan, grid: WalkableGrid) -> None:
    model = RadioModel.from_plan(plan).replace(sigma_db=1.0)
    truth = np.array([[3.25, 2.75], [8.75, 5.25], [4.75, 4.25]])  # cell centres
    win = windows_at(model, truth, frames=20)
    ours = get("grid")(win, model, grid, motion=False, pool_offsets=False)
    assert np.abs(ours.map_xy - truth).max() < 1e-9
    assert np.hypot(*(ours.mean_xy - truth).T).max() < 0.25
    bare = model.replace(walls=())  # ranging ignores walls: give it a world without
    tri = get("trilateration")(windows_at(bare, truth, frames=20), bare, grid)
    assert np.hypot(*(tri.mean_xy - truth).T).max() < 0.05


def test_nelder_mead_batch_finds_minima() -> None:
    targets = np.array([[1.0, -2.0], [3.5, 4.0], [-7.0, 0.25]])

    def f(p: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ((p - targets[rows]) ** 2).sum(axis=1) + 0.5 * (p[:, 0] - targets[rows, 0]) ** 4

    got = nelder_mead_batch(f, np.zeros((3, 2)), 1.0, 200)
    assert np.abs(got - targets).max() < 1e-4


def test_a_wall_blocks_motion() -> None:
    full_wall = room(wall_gap=False)
    g = WalkableGrid.build(full_wall, cell_m=0.5)
    mm = MotionModel(g, MotionParams(walk_diffusion_m2_s=1.0), min_gap_s=1.0)
    cells = mm.cells
    xy = g.centers[cells]
    start = np.zeros((1, len(cells)))
    start[0, np.argmin(np.hypot(xy[:, 0] - 5.75, xy[:, 1] - 4.0))] = 1.0
    after = mm.walk(start, np.array([30.0]))[0]
    assert after.sum() == pytest.approx(1.0, abs=1e-4)
    assert after[xy[:, 0] > 6].sum() < 1e-4  # nothing crossed the wall
    near_same_side = np.argmin(np.hypot(xy[:, 0] - 5.25, xy[:, 1] - 4.0))
    near_other_side = np.argmin(np.hypot(xy[:, 0] - 6.25, xy[:, 1] - 4.0))
    assert after[near_same_side] > 100 * max(after[near_other_side], 1e-12)
    # with a door gap the mass gets through, around the end of the wall
    g2 = WalkableGrid.build(room(wall_gap=True), cell_m=0.5)
    mm2 = MotionModel(g2, MotionParams(walk_diffusion_m2_s=1.0), min_gap_s=1.0)
    after2 = mm2.walk(start, np.array([30.0]))[0]
    assert after2[g2.centers[mm2.cells][:, 0] > 6].sum() > 0.05
    # and the generator has no edge across the wall
    lap = generator(g, cells).tocoo()
    off = lap.row != lap.col
    a, b = xy[lap.row[off]], xy[lap.col[off]]
    assert not (((a[:, 0] < 6) & (b[:, 0] > 6)) | ((a[:, 0] > 6) & (b[:, 0] < 6))).any()


def test_the_dwell_kernel_is_the_exact_one_for_every_gap_even_mixed_in_a_batch() -> None:
    """Euler, Taylor and heat-kernel rows of one batch: each within 2 % of exp(-d·gap·L),
    non-negative, mass kept, and the same as when stepped alone."""
    g = WalkableGrid.build(room(wall_gap=True), cell_m=1.0)
    p = MotionParams()
    mm = MotionModel(g, p, min_gap_s=1.0)
    c = mm.n_cells
    lap = mm.lap.toarray()
    gaps = np.array([1.0, 3.0, 4.0, 10.0, 25.0, 200.0])  # Euler ×2, Taylor ×3, heat kernel
    rng = np.random.default_rng(0)
    x = rng.random((len(gaps), c)).astype(np.float32)
    batch = mm.dwell(x, gaps)
    for i, gap in enumerate(gaps):
        exact = scipy.linalg.expm(-p.dwell_diffusion_m2_s * gap * lap)
        alone = mm.dwell(np.eye(c, dtype=np.float32), np.full(c, gap))
        assert np.abs(alone - exact).max() < 0.02, gap
        assert alone.min() >= 0 and np.allclose(alone.sum(axis=1), 1.0, atol=1e-5)
        if gap < 100:  # the steps are linear; the truncated heat kernel is renormalised
            np.testing.assert_allclose(batch[i], x[i] @ alone, rtol=1e-4, atol=1e-6)
        assert np.abs(batch[i] - x[i] @ exact).max() < 0.02 * x[i].max()
    # the batch is not the first row's kernel applied to every row
    assert not np.allclose(batch[3], mm.dwell(x[3:4], gaps[:1])[0], rtol=1e-3)


def test_non_detection_pulls_the_posterior_away(plan: FloorPlan, grid: WalkableGrid) -> None:
    model = RadioModel.from_plan(plan)
    cells = np.flatnonzero(grid.walkable)
    xy = grid.centers[cells]
    lik = GridLikelihood(model, xy, "ble")
    # heard by a and c only, 5 frames each, at a level that fits anywhere on the left
    rssi = np.array([[-75.0, np.nan, -75.0, np.nan]])
    counts = np.array([[5.0, 0.0, 5.0, 0.0]])
    heard_only = lik(rssi, counts, np.array([0]))  # no frames "sent" → misses ignored
    with_misses = lik(rssi, counts, np.array([5]))  # b and d missed 5 frames each

    def mean_x(ll: np.ndarray) -> float:
        p = np.exp(ll[0] - ll[0].max())
        return float((p / p.sum()) @ xy[:, 0])

    assert mean_x(with_misses) < mean_x(heard_only) - 0.5  # away from b and d (x = 10.5)


def test_offset_evidence_is_the_best_cell_at_each_offset(
    plan: FloorPlan, grid: WalkableGrid
) -> None:
    """The first pass's fast evidence equals the log-likelihood maximised over cells,
    evaluated from its definition at each grid offset (frames heard and missed)."""
    model = RadioModel.from_plan(plan)
    lik = GridLikelihood(model, grid.centers[np.flatnonzero(grid.walkable)], "ble")
    rng = np.random.default_rng(9)
    counts = rng.integers(0, 6, (7, model.n_nodes)).astype(float)
    rssi = np.where(counts > 0, rng.uniform(-95, -50, counts.shape), np.nan)
    frames = counts.max(axis=1).astype(np.int64) + np.array([0, 0, 1, 2, 0, 3, 0])
    fast = lik.offset_evidence(rssi, counts, frames)
    assert fast.shape == (7, lik.n_offsets)
    for q, b in enumerate(lik.b_grid):
        # a prior this sharp pins the profiled offset to b, and the miss term is read at it
        ll = lik(rssi, counts, frames, np.full(7, b), np.full(7, 1e-9))
        np.testing.assert_allclose(fast[:, q], ll.max(axis=1), rtol=1e-5, atol=5e-3)


def test_device_offset_is_learnt_from_the_track(plan: FloorPlan, grid: WalkableGrid) -> None:
    model = RadioModel.from_plan(plan).replace(sigma_db=4.0)
    rng = np.random.default_rng(5)
    spot = np.array([[3.25, 2.75]])
    n = 60
    base = windows_at(model, np.repeat(spot, n, axis=0), frames=3, offset_db=9.0)
    noisy = Windows(
        base.pid,
        base.t_ms,
        base.band,
        base.rssi + rng.normal(0, 4.0 / np.sqrt(3), base.rssi.shape),
        base.counts,
        base.frames,
        base.window_ms,
    )
    pooled = get("grid")(noisy, model, grid, offset_iterations=2)
    alone = get("grid")(noisy, model, grid, pool_offsets=False, motion=False)
    assert pooled.offset_db is not None
    assert abs(float(np.median(pooled.offset_db)) - 9.0) < 2.0
    e_pooled = np.median(np.hypot(*(pooled.mean_xy - spot).T))
    e_alone = np.median(np.hypot(*(alone.mean_xy - spot).T))
    assert e_pooled < 0.6 < e_alone  # a loud phone passes for a near one, unless pooled


def test_forward_backward_matches_brute_force() -> None:
    """Two-mode smoothing on a tiny grid equals the explicit sum over paths."""
    tiny = parse(
        {
            "store": {"id": "tiny"},
            "outline": {"points": [[0, 0], [3, 0], [3, 2], [0, 2]]},
            "nodes": [{"id": "a", "x": 0.5, "y": 0.5, "z": 3.0}],
        }
    )
    g = WalkableGrid.build(tiny, cell_m=1.0)
    p = MotionParams(walk_diffusion_m2_s=0.3, dwell_diffusion_m2_s=0.05, truncate=1e-12)
    mm = MotionModel(g, p, min_gap_s=1.0)
    c = mm.n_cells
    rng = np.random.default_rng(0)
    lik = rng.random((3, c)) + 0.05
    t_ms = np.array([0, 2000, 5000])
    post, p_dwell = smooth_batch(mm, lik, np.zeros(3, np.int64), t_ms)
    # explicit: states (cell, mode); move with the mode's heat kernel, then switch
    lap = mm.lap.toarray()

    def step(gap: float) -> np.ndarray:
        # dwell: the model's own short steps, within 2 % of the exact kernel; walk: exact
        d = p.dwell_diffusion_m2_s
        kd = mm.dwell(np.eye(c), np.full(c, gap))
        assert np.abs(kd - scipy.linalg.expm(-d * gap * lap)).max() < 0.02
        kw = scipy.linalg.expm(-p.walk_diffusion_m2_s * gap * lap)
        sd, sw = np.exp(-gap / p.mean_dwell_s), np.exp(-gap / p.mean_walk_s)
        big = np.zeros((2 * c, 2 * c))
        big[:c, :c], big[:c, c:] = kd * sd, kd * (1 - sd)
        big[c:, :c], big[c:, c:] = kw * (1 - sw), kw * sw
        return big

    pd0 = mm.prior_dwell
    alpha = [np.r_[pd0 * lik[0], (1 - pd0) * lik[0]]]
    trans = [step(2.0), step(3.0)]
    for i in (1, 2):
        alpha.append((alpha[-1] @ trans[i - 1]) * np.r_[lik[i], lik[i]])
    beta = [np.ones(2 * c)]
    for i in (1, 0):
        beta.insert(0, trans[i] @ (np.r_[lik[i + 1], lik[i + 1]] * beta[0]))
    for i in range(3):
        g_ = alpha[i] * beta[i]
        g_ /= g_.sum()
        np.testing.assert_allclose(post[i], g_[:c] + g_[c:], atol=1e-4)
        assert p_dwell[i] == pytest.approx(g_[:c].sum(), abs=1e-4)
    # the forward pass alone gives the track's marginal likelihood, whatever the rows' scales
    one = np.zeros(3, np.int64)
    ev = log_evidence(mm, lik, np.zeros(3), one, t_ms)
    assert ev[0] == pytest.approx(np.log(alpha[-1].sum()), abs=1e-4)
    scale = np.array([1.0, -2.0, 3.0])
    assert log_evidence(mm, lik * np.exp(-scale)[:, None], scale, one, t_ms)[0] == pytest.approx(
        ev[0], abs=1e-4
    )


def standing_phone(
    plan: FloorPlan, spot: tuple[float, float], offset_db: float, minutes: float, seed: int
) -> Windows:
    """5 s windows of a phone standing at ``spot`` (0.3 m of sway), its frames
    drawn by the simulator's radio (shadowing, whole-dBm reports, sensitivity)."""
    from heatmap.localizers.base import make_windows
    from heatmap.simulate.radio import received
    from heatmap.simulate.scenario import RadioTruth

    rng = np.random.default_rng(seed)
    n = int(minutes * 60)  # one advert a second
    t = np.sort(rng.uniform(0, n * 1000, n)).astype(np.int64)
    pos = np.asarray(spot) + rng.normal(0, 0.3, (n, 2))
    radio = RadioTruth()
    rx = received(pos, np.full(n, offset_db), radio.p0_ble_dbm, plan, radio, rng)
    f, j = np.nonzero(~np.isnan(rx))
    return make_windows(t[f], j, np.full(len(f), "p"), rx[f, j], np.full(len(f), "ble"), 6)


def test_likelihood_at_fixed_offsets_is_the_sharp_prior_limit(
    plan: FloorPlan, grid: WalkableGrid
) -> None:
    """The marginal search's several offsets at once equal the likelihood under a
    prior that pins the offset, one offset at a time."""
    model = RadioModel.from_plan(plan)
    lik = GridLikelihood(model, grid.centers[np.flatnonzero(grid.walkable)], "ble")
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 6, (30, model.n_nodes)).astype(float)
    rssi = np.where(counts > 0, rng.uniform(-93, -55, counts.shape), np.nan)
    frames = counts.max(axis=1).astype(np.int64) + rng.integers(0, 3, 30)
    b = rng.normal(0, 4, 30)
    deltas = (-0.5, 0.0, 0.75)
    for d, ll in zip(deltas, lik.at_offsets(rssi, counts, frames, b, deltas), strict=True):
        ref = lik(rssi, counts, frames, b + d, np.full(30, 1e-9))
        np.testing.assert_allclose(ll, ref, rtol=1e-6, atol=1e-3)


def test_a_level_shift_of_the_radio_model_is_a_louder_phone(
    plan: FloorPlan, grid: WalkableGrid
) -> None:
    """Every level 0.7 dB lower is the same model for a phone 0.7 dB louder: the
    likelihood at every cell must agree. (The miss term was read off a 2 dB offset
    grid by linear interpolation, whose error depends on where an offset falls
    between steps — up to 0.015 nats per missed frame, summed over a track — and
    that shift moved heatmap r on the 20-node store by 0.1.)"""
    model = RadioModel.from_plan(plan)
    shifted = model.replace(p0={b: v - 0.7 for b, v in model.p0.items()})
    cells = grid.centers[np.flatnonzero(grid.walkable)]
    a, b = GridLikelihood(model, cells, "ble"), GridLikelihood(shifted, cells, "ble")
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 6, (40, model.n_nodes)).astype(float)
    rssi = np.where(counts > 0, rng.uniform(-93, -60, counts.shape), np.nan)
    frames = counts.max(axis=1).astype(np.int64) + rng.integers(0, 4, 40)
    sharp = np.full(40, 1e-6)
    for off in (-3.1, 0.0, 4.45):
        la = a(rssi, counts, frames, np.full(40, off), sharp)
        lb = b(rssi, counts, frames, np.full(40, off + 0.7), sharp)
        np.testing.assert_allclose(lb, la, atol=5e-3)  # the 2 dB grid: 0.08


def test_marginal_offset_search_finds_the_peak() -> None:
    """The search ends where the track's marginal likelihood (every path summed
    out), scanned on a fine offset grid, peaks — starting 0.6 dB away."""
    from heatmap.localizers.phone_offsets import marginal_offsets
    from heatmap.simulate import accuracy_harness as harness
    from heatmap.simulate.scenario import RadioTruth

    plan = load_default()
    g = WalkableGrid.build(plan, cell_m=1.0)
    model = harness.oracle_model(plan, RadioTruth())
    mm = MotionModel(g, min_gap_s=5.0)
    win = standing_phone(plan, (12.0, 10.0), 2.3, 8, seed=4)
    lik_model = GridLikelihood(model, g.centers[np.flatnonzero(g.walkable)], "ble")
    rows = np.arange(len(win))
    dev = np.zeros(len(win), np.int64)

    def log_marginal(b: float) -> float:
        ll = lik_model(
            win.rssi, win.counts, win.frames, np.full(len(win), b), np.full(len(win), 1e-4)
        )
        top = ll.max(axis=1)
        lik = np.exp(ll - top[:, None]).astype(np.float32)
        prior = -0.5 * b * b / model.offset_sigma_db**2
        return float(log_evidence(mm, lik, top, dev, win.t_ms)[0]) + prior

    scan = np.arange(0.5, 4.01, 0.05)
    peak = scan[np.argmax([log_marginal(b) for b in scan])]
    found, var = marginal_offsets(lik_model, mm, win, rows, dev, np.full(len(win), peak + 0.6), 3)
    assert found[0] == pytest.approx(peak, abs=0.1)
    assert 0.0 < var[0] < 1.0


def test_track_segments_cover_every_row_once_in_order() -> None:
    """The smoother keeps only segment cores: those must be every window once, in
    the original order (the caller takes them as they come)."""
    from heatmap.localizers.track_segments import track_segments

    lengths = [1, 5, 300, 301, 302, 899, 2000, 7]
    dev = np.repeat(np.arange(len(lengths)), lengths)
    rows, seg, keep = track_segments(dev, 240, 60)
    np.testing.assert_array_equal(rows[keep], np.arange(len(dev)))
    # each segment lies within one track, on consecutive windows
    for s in np.unique(seg):
        r = rows[seg == s]
        assert len(np.unique(dev[r])) == 1 and (np.diff(r) == 1).all()
    assert np.bincount(seg).max() <= 240 + 2 * 60


def test_smoothing_gathered_rows_equals_smoothing_their_copy() -> None:
    g = WalkableGrid.build(load_default(), cell_m=2.0)
    mm = MotionModel(g, min_gap_s=1.0)
    rng = np.random.default_rng(5)
    lik = (rng.random((40, mm.n_cells)) + 1e-3).astype(np.float32)
    rows = np.r_[np.arange(10, 30), np.arange(25, 40)]  # overlapping, as segments are
    dev = np.r_[np.zeros(20, np.int64), np.ones(15, np.int64)]
    t_ms = np.r_[np.arange(20), np.arange(15)] * 1000
    a, pa = smooth_batch(mm, lik[rows], dev, t_ms)
    b, pb = smooth_batch(mm, lik, dev, t_ms, rows=rows)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


def test_most_likely_tracks_follow_the_people_on_walkable_cells() -> None:
    """``locate(tracks=True)``: one Viterbi track per pseudonym, on walkable cells,
    about as close to the truth as the posterior mean (the report's flows can use it)."""
    from heatmap.localizers.localize import locate
    from heatmap.simulate import accuracy_harness as harness
    from heatmap.simulate.scenario import Scenario

    plan = load_default()
    sc = Scenario(hours=0.1, seed=2)
    sw = harness.simulate_windows(plan, sc)
    grid = WalkableGrid.build(plan, cell_m=1.0)
    post = locate(sw.windows, harness.oracle_model(plan, sc.radio), grid, tracks=True)
    assert post.track_xy is not None and np.isfinite(post.track_xy).all()
    cells = grid.cells_of(post.track_xy)
    assert grid.walkable.ravel()[cells].all()
    e_track = np.median(harness.errors(post.track_xy, sw.truth_xy))
    e_mean = np.median(harness.errors(post.mean_xy, sw.truth_xy))
    assert e_track < 1.5 * e_mean + 0.5, (e_track, e_mean)
    assert locate(sw.windows, harness.oracle_model(plan, sc.radio), grid).track_xy is None


def test_a_merged_block_is_its_windows_together_once_the_offset_is_known(
    plan: FloorPlan, grid: WalkableGrid
) -> None:
    """Ten 1 s windows of a standing phone and the 10 s block they merge into carry
    the same evidence when the device's offset is known (a sharp prior): equal
    log-likelihoods up to a constant. (Profiling the offset again per window made
    the block up to 12 nats flatter than its windows.)"""
    from heatmap.localizers.two_scale import merge_blocks

    model = RadioModel.from_plan(plan)
    lik = GridLikelihood(model, grid.centers[np.flatnonzero(grid.walkable)], "ble")
    rng = np.random.default_rng(5)
    xy = np.tile([[4.0, 3.0]], (10, 1))
    mu = model.mean_rssi(xy, "ble") + 2.5
    counts = rng.integers(0, 3, mu.shape).astype(np.uint8)
    rssi = np.where(counts > 0, mu + rng.normal(0, model.sigma_db, mu.shape), np.nan)
    frames = counts.max(axis=1).astype(np.int64) + 1
    win = Windows(
        np.full(10, "p"),
        np.arange(10, dtype=np.int64) * 1000,
        np.full(10, "ble"),
        rssi.astype(np.float32),
        counts,
        frames,
        1000,
    )
    block = merge_blocks(win, np.array([0]), 10_000)
    for var in (0.05, 0.2, 0.5):
        each = lik(win.rssi, win.counts, win.frames, np.full(10, 2.5), np.full(10, var))
        merged = lik(block.rssi, block.counts, block.frames, np.array([2.5]), np.array([var]))[0]
        together = each.sum(axis=0, dtype=np.float64)
        diff = (together - together.max()) - (merged - merged.max())
        assert np.abs(diff).max() < 0.02, var


def test_a_cell_mostly_free_beside_a_shelf_is_walkable_and_no_move_crosses_a_shelf() -> None:
    """``samples=2``: a 1 m cell whose centre is within the shelf clearance but three
    quarters free is walkable; moves still go around shelves, never through them,
    even across cells that straddle a thin one (2 m cells)."""
    import scipy.sparse.csgraph

    def shelf_room(y0: float, y1: float) -> FloorPlan:
        return parse(
            {
                "store": {"id": "shelves"},
                "outline": {"points": [[0, 0], [12, 0], [12, 10], [0, 10]]},
                "shelves": [{"id": "s", "points": [[1, y0], [11, y0], [11, y1], [1, y1]]}],
                "nodes": [{"id": "a", "x": 6.0, "y": 2.0, "z": 3.0}],
            }
        )

    plan = shelf_room(3.95, 4.35)
    centre = WalkableGrid.build(plan, cell_m=1.0)
    any_part = WalkableGrid.build(plan, cell_m=1.0, samples=2)
    beside = centre.cell_of(5.5, 4.5)  # centre 0.15 m from the shelf: inside the clearance
    assert not centre.walkable[beside] and any_part.walkable[beside]
    assert (any_part.walkable >= centre.walkable).all()
    straddled = shelf_room(4.8, 5.2)  # 2 m cells centred on y = 5 have free points both sides
    for g in (any_part, WalkableGrid.build(straddled, cell_m=2.0, samples=2)):
        below, above = g.cell_of(6.0, 2.5), g.cell_of(6.0, 7.5)
        assert g.walkable[below] and g.walkable[above]
        d = scipy.sparse.csgraph.shortest_path(g.graph, indices=[below])[0, above]
        assert d > 10.0  # around a shelf end (~12 m), not 5 m straight through
