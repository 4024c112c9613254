"""Point samplers of the paper's numerical models (coordinates in nm, densities in nm⁻²).

Every sampler is an object with its parameters set in ``__init__`` (scikit-learn style) and one method,
``sample(n, window, runs=1, seed=None)``, returning an array of shape ``(runs, n, 2)`` (x, y in nm) of points in
``window`` (a :class:`~sacmap.analysis.spatial.window.Region`, ``(width, height)`` / ``(x0, y0, x1, y1)`` in nm,
or None for the paper's 10 × 10 nm square). ``seed`` is an int, None, a ``numpy.random.SeedSequence`` or a
``Generator``; run ``r`` draws from its own child stream ``SeedSequence(seed).spawn(runs)[r]``, so a run's points
do not depend on how many runs are asked for or on the batch sizes used internally.

* :class:`RandomSampler` — uniform in the window (Poisson, fixed count).
* :class:`AttractiveSampler` — the paper's two-stage rule: ``n_first`` uniform points, then the remaining points
  uniformly in ``box_nm × box_nm`` boxes centred on first-stage points (spread evenly over the parents).
* :class:`RepulsiveSampler` — the paper's iterative rule: a proposal (uniform in the window) is accepted when
  ``R + C < NN(d)``, ``R ~ U(0, 1)`` (read as nm, like the 10 × 10 nm grid), ``C = c_nm`` (0.2 nm in the paper),
  ``NN(d)`` its distance to the nearest accepted point (∞ for the first). Vectorised: proposals are drawn in
  batches, tested against the points accepted before the batch with a KD-tree (only neighbours closer than
  ``C + 1`` nm can reject), and the few survivors that could interfere are resolved in proposal order, so the
  result is *identical* to the one-proposal-at-a-time rule (:func:`sample_repulsive_naive`) for the same seed.

The DFT-biased sampler is :class:`~sacmap.analysis.spatial.samplers.dft.DFTBiasedSampler`; samplers by name come
from :func:`~sacmap.analysis.spatial.samplers.registry.make_sampler`, several species from
:class:`~sacmap.analysis.spatial.samplers.multispecies.MultiSpeciesSampler`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from sacmap.analysis.errors import AnalysisInputError
from sacmap.analysis.spatial.window import Region

PAPER_BOX_NM = 10.0
#: batches with more proposals than this are looked up in raster-row order (same result, cache friendly)
SORT_ABOVE = 50_000

def default_region(region=None) -> Region:
    """The region to sample in: the paper's 10 × 10 nm square when None."""
    return Region.rectangle(PAPER_BOX_NM) if region is None else Region.coerce(region)


def run_seeds(seed, runs: int) -> list[np.random.SeedSequence]:
    """One child seed sequence per run (same ``seed`` → same children on any machine)."""
    if isinstance(seed, np.random.Generator):
        seed = seed.bit_generator.seed_seq
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return ss.spawn(int(runs))


def run_rngs(seed, runs: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in run_seeds(seed, runs)]


def n_for_density(density_nm2: float, region=None) -> int:
    """Number of points giving ``density_nm2`` (nm⁻²) in the region's support area."""
    if not (np.isfinite(density_nm2) and density_nm2 > 0):
        raise AnalysisInputError(f"density must be a positive number of atoms/nm², got {density_nm2!r}")
    return int(round(density_nm2 * default_region(region).area_nm2))


def _check_counts(n_points: int, runs: int) -> tuple[int, int]:
    if int(n_points) < 1:
        raise AnalysisInputError(f"number of points must be ≥ 1, got {n_points!r}")
    if int(runs) < 1:
        raise AnalysisInputError(f"number of runs must be ≥ 1, got {runs!r}")
    return int(n_points), int(runs)


class RandomSampler:
    """Uniform (Poisson, fixed count) points. No parameters."""

    name = "random"

    def describe(self, n_points: int, window=None) -> dict:
        """The parameters in effect for ``n_points`` in ``window`` (JSON-friendly)."""
        return {}

    def sample(self, n_points: int, window=None, runs: int = 1, seed=None) -> np.ndarray:
        """``(runs, n_points, 2)`` uniform points (nm) in the window's support."""
        n_points, runs = _check_counts(n_points, runs)
        region = default_region(window)
        return np.stack([region.sample_uniform(n_points, rng) for rng in run_rngs(seed, runs)])


def _box_points(region: Region, parents: np.ndarray, u: np.ndarray, box_nm: float) -> np.ndarray:
    """Uniform points in the part of each parent's box that lies in the region's bounding rectangle."""
    half = 0.5 * box_nm
    lo = np.maximum(parents - half, [region.x0, region.y0])
    hi = np.minimum(parents + half, [region.x1, region.y1])
    return lo + u * (hi - lo)


class AttractiveSampler:
    """The paper's attractive model.

    Stage 1: ``n_first`` uniform points (default ``max(1, round(first_fraction · n))``; the paper's 50 of 400 is
    ``first_fraction = 0.125``). Stage 2: the other ``n - n_first`` points uniformly in a ``box_nm × box_nm`` box
    (nm, clipped to the window) centred on a first-stage point; every parent gets ``(n - n_first) // n_first``
    children and the remainder go to distinct parents chosen at random. ``n_first == n`` is the random model.
    With a mask window, stage-2 points off the support are redrawn.
    """

    name = "attractive"

    def __init__(self, first_fraction: float = 0.125, box_nm: float = 1.0, n_first: int | None = None):
        if not (np.isfinite(first_fraction) and 0 < first_fraction <= 1):
            raise AnalysisInputError(f"first fraction must be in (0, 1], got {first_fraction!r}")
        self.first_fraction = first_fraction
        self.box_nm = box_nm
        self.n_first = n_first

    def describe(self, n_points: int, window=None) -> dict:
        """The parameters in effect for ``n_points`` in ``window`` (JSON-friendly)."""
        return {"n_first": self.first_stage(int(n_points)), "box_nm": self.box_nm}

    def first_stage(self, n_points: int) -> int:
        """Number of stage-1 points for ``n_points`` in all."""
        return int(self.n_first) if self.n_first is not None else max(1, int(round(self.first_fraction * n_points)))

    def sample(self, n_points: int, window=None, runs: int = 1, seed=None) -> np.ndarray:
        """``(runs, n_points, 2)`` points (nm)."""
        n_first, box_nm, region = self.first_stage(int(n_points)), self.box_nm, window
        n_points, runs = _check_counts(n_points, runs)
        if not 1 <= int(n_first) <= n_points:
            raise AnalysisInputError(f"n_first must be between 1 and n_points ({n_points}), got {n_first!r}")
        if not box_nm > 0:
            raise AnalysisInputError(f"box_nm must be positive, got {box_nm!r}")
        region = default_region(region)
        n_first = int(n_first)
        n_extra = n_points - n_first
        out = np.empty((runs, n_points, 2))
        for r, rng in enumerate(run_rngs(seed, runs)):
            first = region.sample_uniform(n_first, rng)
            per, rem = divmod(n_extra, n_first)
            parent_idx = np.repeat(np.arange(n_first), per)
            if rem:
                parent_idx = np.concatenate([parent_idx, rng.choice(n_first, rem, replace=False)])
            kids = _box_points(region, first[parent_idx], rng.random((n_extra, 2)), box_nm)
            if region.is_mask:
                for _ in range(1000):
                    bad = ~region.contains(kids)
                    if not bad.any():
                        break
                    kids[bad] = _box_points(region, first[parent_idx[bad]], rng.random((int(bad.sum()), 2)), box_nm)
                else:
                    raise AnalysisInputError("attractive sampler: boxes around stage-1 points miss the support")
            out[r, :n_first], out[r, n_first:] = first, kids
        return out


def sample_repulsive_naive(n_points: int, region=None, seed=None, c_nm: float = 0.2,
                           max_proposals: int | None = None) -> np.ndarray:
    """Reference implementation of the repulsive rule, one proposal at a time, NN by scanning all accepted points.

    Each proposal consumes three uniforms ``(u_x, u_y, R)`` from the run's stream. Returns ``(n_points, 2)``.
    Kept for tests and ``benchmarks/sampling.py``; use :func:`sample_repulsive`.
    """
    region = default_region(region)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    max_proposals = max_proposals or 2000 * n_points + 10_000
    pts = np.empty((n_points, 2))
    k = 0
    for _ in range(max_proposals):
        u = rng.random(3)
        p = region.map_unit(u[:2])
        nn = np.sqrt(np.min(np.sum((pts[:k] - p) ** 2, axis=1))) if k else np.inf
        if u[2] + c_nm < nn:
            pts[k] = p
            k += 1
            if k == n_points:
                return pts
    raise AnalysisInputError(f"repulsive sampler: only {k} of {n_points} points accepted after {max_proposals} "
                             "proposals; lower the density or C")


def _resolve_in_order(m: int, pi: np.ndarray, pj: np.ndarray) -> np.ndarray:
    """Acceptance of ``m`` ordered survivors where pair (i < j) means 'if i is accepted, j is rejected'.

    Survivor j is accepted iff no earlier conflicting survivor is accepted — exactly what the sequential rule
    does. Resolved in rounds: each round settles every survivor whose earlier partners are all settled.
    """
    state = np.zeros(m, dtype=np.int8)  # 0 unknown, 1 accepted, -1 rejected
    if len(pi) == 0:
        state[:] = 1
        return state == 1
    has_pred = np.zeros(m, dtype=bool)
    has_pred[pj] = True
    state[~has_pred] = 1
    while True:
        unknown = state == 0
        if not unknown.any():
            break
        si = state[pi]
        killed = np.zeros(m, dtype=bool)
        killed[pj[si == 1]] = True
        pending = np.zeros(m, dtype=bool)
        pending[pj[si == 0]] = True
        state[unknown & killed] = -1
        state[unknown & ~killed & ~pending] = 1
    return state == 1


class RepulsiveSampler:
    """The paper's repulsive model, vectorised over proposals and runs (see the module docstring).

    ``c_nm``: C (nm, 0.2 in the paper). ``max_proposals`` (per run, default ``2000 n + 10⁴``) guards against
    densities the rule cannot reach. ``progress``: a progress bar. After :meth:`sample`, ``proposals_drawn_``
    holds the proposals drawn per run (including the unused tail of the last batch).
    Same result as :func:`sample_repulsive_naive` with the run's seed.
    """

    name = "repulsive"

    def __init__(self, c_nm: float = 0.2, max_proposals: int | None = None, progress: bool = False):
        if not (np.isfinite(c_nm) and c_nm >= 0):
            raise AnalysisInputError(f"C must be a non-negative distance in nm, got {c_nm!r}")
        self.c_nm = c_nm
        self.max_proposals = max_proposals
        self.progress = progress

    def describe(self, n_points: int, window=None) -> dict:
        """The parameters in effect for ``n_points`` in ``window`` (JSON-friendly)."""
        return {"c_nm": self.c_nm}

    def sample(self, n_points: int, window=None, runs: int = 1, seed=None) -> np.ndarray:
        """``(runs, n_points, 2)`` points (nm)."""
        c_nm, max_proposals, progress, region = self.c_nm, self.max_proposals, self.progress, window
        n_points, runs = _check_counts(n_points, runs)
        if not (np.isfinite(c_nm) and c_nm >= 0):
            raise AnalysisInputError(f"C must be a non-negative distance in nm, got {c_nm!r}")
        region = default_region(region)
        max_proposals = max_proposals or 2000 * n_points + 10_000
        reach = c_nm + 1.0  # a neighbour further than C + max(R) never rejects
        shift = region.width_nm + 2.0 * reach + 1.0  # runs laid side by side never interact
        rngs = run_rngs(seed, runs)
        pts = np.full((runs, n_points, 2), np.nan)
        count = np.zeros(runs, dtype=np.int64)
        used = np.zeros(runs, dtype=np.int64)
        alpha = np.ones(runs)  # acceptance-rate estimate per run, sets the batch size
        all_xy = np.empty((0, 2))  # accepted points of all runs, shifted
        # Pre-filter: accepted points are > C apart, so a raster of cells of side ≤ C/√2 holds at most one point
        # each. A proposal is rejected outright when a point in its own or the 8 adjacent cells is within R + C;
        # only the others need the KD-tree (exact either way).
        raster = _CellRaster(region, runs, c_nm) if c_nm > 0 else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=runs * n_points, desc="repulsive", unit="pt")
        while True:
            active = np.flatnonzero(count < n_points)
            if active.size == 0:
                break
            if np.any(used[active] >= max_proposals):
                r = int(active[np.argmax(used[active])])
                raise AnalysisInputError(
                    f"repulsive sampler: run {r} has only {count[r]} of {n_points} points after {used[r]} proposals;"
                    " lower the density or C")
            ks = np.empty(len(active), dtype=np.int64)
            us = []
            for a, r in enumerate(active):
                want = max(8, min(n_points - count[r], count[r]))
                ks[a] = int(min(max_proposals - used[r], max(16, np.ceil(1.2 * want / max(alpha[r], 1e-4)))))
                us.append(rngs[r].random((ks[a], 3)))
            used[active] += ks
            u = np.concatenate(us)
            rid = np.repeat(active, ks)
            xy = region.map_unit(u[:, :2])
            t = u[:, 2] + c_nm
            alive = np.ones(len(t), dtype=bool)
            if raster is not None and len(all_xy):
                alive = raster.nearest_local(xy, rid) > t
            cand = np.flatnonzero(alive)
            cxy = xy[cand] + np.column_stack([rid[cand] * shift, np.zeros(len(cand))])
            if len(all_xy) and len(cand):
                d_old = _query_in_row_order(cKDTree(all_xy, balanced_tree=False), cxy, reach, region)
            else:
                d_old = np.full(len(cand), np.inf)
            ok = t[cand] < d_old
            surv = cand[ok]
            sxy, st, srid = cxy[ok], t[surv], rid[surv]
            if len(surv) > 1:
                pairs = cKDTree(sxy).query_pairs(reach, output_type="ndarray")
                pi, pj = pairs[:, 0], pairs[:, 1]  # i < j, i.e. i proposed first (runs never pair up)
                dij = np.hypot(*(sxy[pi] - sxy[pj]).T)
                keep = dij <= st[pj]
                acc = _resolve_in_order(len(surv), pi[keep], pj[keep])
            else:
                acc = np.ones(len(surv), dtype=bool)
            acc_idx, arid = surv[acc], srid[acc]
            # the run stops at n_points: keep its first (n - count) acceptances in proposal order
            first_of_run = np.searchsorted(arid, arid, side="left")
            rank = np.arange(len(arid)) - first_of_run
            keep = rank < (n_points - count[arid])
            acc_idx, arid, rank = acc_idx[keep], arid[keep], rank[keep]
            pts[arid, count[arid] + rank] = xy[acc_idx]
            if raster is not None:
                raster.add(xy[acc_idx], arid)
            n_acc = np.bincount(arid, minlength=runs)
            alpha[active] = np.maximum(n_acc[active], 0.5) / ks
            count += n_acc
            all_xy = np.concatenate([all_xy, xy[acc_idx] + np.column_stack([arid * shift, np.zeros(len(arid))])])
            if bar is not None:
                bar.update(int(n_acc.sum()))
        if bar is not None:
            bar.close()
        self.proposals_drawn_ = used.copy()
        return pts


class HardCoreSampler:
    """Hard-core process by random sequential inhibition (SSI): uniform proposals in the window, accepted when no
    accepted point lies within ``hard_core_nm`` (nm); ``n`` points per run (fixed count, like the other samplers).
    Proposals are drawn in batches; conflicts inside a batch are resolved in proposal order, so the result equals
    the one-at-a-time rule. ``max_proposals`` (per run, default ``2000 n + 10⁴``) stops densities SSI cannot reach
    (its jamming limit covers ≈ 55 % of the plane with discs of diameter ``hard_core_nm``)."""

    name = "hardcore"

    def __init__(self, hard_core_nm: float = 0.2, max_proposals: int | None = None):
        if not (np.isfinite(hard_core_nm) and hard_core_nm >= 0):
            raise AnalysisInputError(f"hard core must be a non-negative distance in nm, got {hard_core_nm!r}")
        self.hard_core_nm = float(hard_core_nm)
        self.max_proposals = max_proposals

    def describe(self, n_points: int, window=None) -> dict:
        return {"hard_core_nm": self.hard_core_nm}

    def sample(self, n_points: int, window=None, runs: int = 1, seed=None) -> np.ndarray:
        """``(runs, n_points, 2)`` points (nm), no two closer than ``hard_core_nm``."""
        n_points, runs = _check_counts(n_points, runs)
        region = default_region(window)
        h = self.hard_core_nm
        limit = self.max_proposals or 2000 * n_points + 10_000
        out = np.empty((runs, n_points, 2))
        for r, rng in enumerate(run_rngs(seed, runs)):
            pts = np.empty((0, 2))
            used = 0
            while len(pts) < n_points:
                if used >= limit:
                    raise AnalysisInputError(f"hard-core sampler: only {len(pts)} of {n_points} points after {used} "
                                             f"proposals; lower the density or the hard core ({h} nm)")
                k = int(min(limit - used, max(64, 2 * (n_points - len(pts)))))
                used += k
                xy = region.sample_uniform(k, rng)
                if len(pts) and h > 0:
                    d, _ = cKDTree(pts).query(xy, distance_upper_bound=h)
                    xy = xy[d > h]
                if len(xy) > 1 and h > 0:
                    pairs = cKDTree(xy).query_pairs(h, output_type="ndarray")
                    acc = _resolve_in_order(len(xy), pairs[:, 0], pairs[:, 1])
                    xy = xy[acc]
                pts = np.concatenate([pts, xy[: n_points - len(pts)]])
            out[r] = pts
        return out


def _query_in_row_order(tree: cKDTree, xy: np.ndarray, reach: float, region: Region) -> np.ndarray:
    """Nearest-neighbour distances (∞ beyond ``reach``) of ``xy``, queried in rows of ``reach`` height (a
    linear-time radix sort) so that consecutive queries visit the same tree nodes; same result as one query."""
    if len(xy) < SORT_ABOVE:
        return tree.query(xy, distance_upper_bound=reach)[0]
    rows = ((xy[:, 1] - region.y0) / reach).astype(np.int64)
    if rows.max() >= 32_000 or rows.min() < 0:
        return tree.query(xy, distance_upper_bound=reach)[0]
    order = np.argsort(rows.astype(np.int16), kind="stable")
    out = np.empty(len(xy))
    out[order] = tree.query(xy[order], distance_upper_bound=reach)[0]
    return out


class _CellRaster:
    """Per-run raster of square cells (side ≤ C/√2) holding at most one accepted point each (coordinates, nm)."""

    FAR = 1e9

    def __init__(self, region: Region, runs: int, c_nm: float):
        self.s = c_nm / np.sqrt(2.0) * (1 - 1e-9)
        self.x0, self.y0 = region.x0, region.y0
        self.nx = int(np.ceil(region.width_nm / self.s)) + 1
        self.ny = int(np.ceil(region.height_nm / self.s)) + 1
        self.wx, self.wy = self.nx + 2, self.ny + 2  # one empty cell of padding on each side
        self.per_run = self.wx * self.wy
        self.cxy = np.full((runs * self.per_run, 2), self.FAR)  # x, y side by side: one cache line per lookup
        self.offsets = np.array([dy * self.wx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)])

    def _flat(self, xy: np.ndarray, rid: np.ndarray) -> np.ndarray:
        ix = np.clip(((xy[:, 0] - self.x0) / self.s).astype(np.int64), 0, self.nx - 1) + 1
        iy = np.clip(((xy[:, 1] - self.y0) / self.s).astype(np.int64), 0, self.ny - 1) + 1
        return rid * self.per_run + iy * self.wx + ix

    def add(self, xy: np.ndarray, rid: np.ndarray) -> None:
        self.cxy[self._flat(xy, rid)] = xy

    def nearest_local(self, xy: np.ndarray, rid: np.ndarray) -> np.ndarray:
        """Distance (nm) to the nearest point in the 3 × 3 cells around each query (∞-like if none).

        Large batches are looked up in raster-row order (a linear-time radix sort on the row), so the lookups
        walk the raster instead of jumping across it: the raster outgrows the CPU caches at ~10⁵ points."""
        m = len(xy)
        flat = self._flat(xy, rid)
        order = None
        rows = flat // self.wx
        if m > SORT_ABOVE and rows.max() < 32_000:
            order = np.argsort(rows.astype(np.int16), kind="stable")
            flat, xy = flat[order], xy[order]
        d = np.empty(m)
        step = 1 << 18  # chunks keep the (9, chunk, 2) temporaries in cache-sized pieces
        for a in range(0, m, step):
            b = min(a + step, m)
            f = (self.offsets[:, None] + flat[a:b]).ravel()  # (9, k): reductions over axis 0 are fast
            g = np.take(self.cxy, f, axis=0).reshape(9, b - a, 2)
            g -= xy[a:b]
            g *= g
            d[a:b] = np.sqrt((g[..., 0] + g[..., 1]).min(axis=0))
        if order is None:
            return d
        out = np.empty(m)
        out[order] = d
        return out
