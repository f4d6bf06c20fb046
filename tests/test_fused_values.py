"""The fast paths of a zeroth-order step give the numbers and counts of the plain ones.

- the quadratic's fused evaluation (``BilevelProblem.vectorized``, used by ``Oracle.values``) against
  ``vmap`` of its function (``Oracle.fused = False``): per-point samples laid out in runs (a ZOBA step),
  unrelated per-point samples, several samples per point, a shared batch and full data;
- ZOBA / HF-ZOBA iterations through either path;
- ``PointSet``'s in-place layout (its per-thread workspace) against the points written out by hand;
- ``standard_normal`` against ``torch.randn``.
"""

import pytest
import torch

import bilevel
import bilevel.components.zeroth_order as zo
from bilevel import run
from bilevel.oracle import Oracle
from bilevel.problems import quadratic
from bilevel.problems.quadratic import RUN_MIN, _stretches


@pytest.fixture(scope="module")
def quad20():
    return bilevel.problems.make("quadratic", dim_inner=20, dim_outer=12, n_samples_inner=256, n_samples_outer=64,
                                 seed=2442)


def _close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-12) -> None:
    """Equal to ``rel`` relative to the largest value (single values of a quadratic may cancel to ~0)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=rel, atol=rel * scale)


def _zoba_layout(gen, n, b=25, l=100):
    """Per-point samples of one ZOBA g-evaluation: b base points, then 4 segments of b runs of l points."""
    xi = torch.randint(n, (b,), generator=gen)
    runs = xi[:, None].expand(b, l).reshape(-1)
    return torch.cat([xi, runs, runs, runs, runs])[:, None]


def _batches(gen, n, points):
    lengths = torch.tensor([3, 100, 100, 2, 1, 60, 40, 5, 7, 1, 9, 4])  # long runs, and short repeats
    short = torch.randint(1, 8, (points,), generator=gen)
    lengths = torch.cat([lengths, short[:int((short.cumsum(0) < points - lengths.sum()).sum())]])
    lengths = torch.cat([lengths, (points - lengths.sum()).reshape(1)])
    mixed = torch.randint(n, (lengths.numel(), 1), generator=gen).repeat_interleave(lengths, 0)
    return {"zoba layout": _zoba_layout(gen, n, b=7, l=(points - 7) // 28)[:points],
            "unrelated per point": torch.randint(n, (points, 1), generator=gen),
            "runs and short repeats": mixed,
            "3 samples per point": torch.randint(n, (points, 3), generator=gen),
            "3 samples, in runs": torch.randint(n, (points // 20, 3), generator=gen).repeat_interleave(20, 0),
            "shared batch": torch.randint(n, (9,), generator=gen),
            "full data": None}


@pytest.mark.parametrize("small_blocks", [False, True])
@pytest.mark.parametrize("level", ["g", "f"])
def test_fused_values_equal_vmap_values_and_counts(quad20, level, small_blocks, monkeypatch):
    if small_blocks:  # every stretch in several blocks of runs
        monkeypatch.setattr(quadratic, "VALUES_BLOCK_BYTES", 1)
    gen = torch.Generator().manual_seed(0)
    points = 7 + 28 * 20
    xs = quad20.x0 + torch.randn(points, quad20.dim_outer, generator=gen, dtype=torch.float64)
    ys = quad20.y0 + torch.randn(points, quad20.dim_inner, generator=gen, dtype=torch.float64)
    for label, batch in _batches(gen, quad20.n_samples[level], points).items():
        n = points if batch is None or batch.ndim == 1 else batch.shape[0]
        fused, plain = Oracle(quad20), Oracle(quad20)
        plain.fused = False
        got, want = fused.values(level, xs[:n], ys[:n], batch), plain.values(level, xs[:n], ys[:n], batch)
        _close(got, want)
        assert fused.counts == plain.counts and fused.counts[f"{level}_value"] == n, label


def test_fused_values_at_the_problem_dtype():
    problem = bilevel.problems.make("quadratic", dim_inner=8, dim_outer=5, n_samples_inner=64, seed=1,
                                    dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    batch = _zoba_layout(gen, 64, b=3, l=24)  # 3 + 12·24 points
    xs, ys = torch.randn(batch.shape[0], 5, generator=gen), torch.randn(batch.shape[0], 8, generator=gen)
    plain = Oracle(problem)
    plain.fused = False
    got = Oracle(problem).values("g", xs, ys, batch)
    assert got.dtype == torch.float32
    _close(got, plain.values("g", xs, ys, batch), rel=1e-5)


def test_stretches_cover_every_point_once_with_one_sample_row_per_run():
    gen = torch.Generator().manual_seed(2)
    for batch in _batches(gen, 16, 7 + 28 * 20).values():
        if batch is None or batch.ndim == 1:
            continue
        position = 0
        for start, length, count in _stretches(batch):
            assert start == position and (length == 1 or length >= RUN_MIN)
            runs = batch[start:start + length * count].view(count, length, -1)
            assert torch.equal(runs, runs[:, :1].expand_as(runs))
            position += length * count
        assert position == batch.shape[0]


@pytest.mark.parametrize("name", ["zoba", "hf-zoba"])
def test_zoba_iterations_through_the_fused_path_equal_the_vmap_path(quad20, name, monkeypatch):
    """Same iterates (to rounding) and the same counts, one value per point, at the reference defaults."""
    method = bilevel.methods.make(name)
    fused = run(method, quad20, max_iters=3, seed=7)
    monkeypatch.setattr(Oracle, "fused", False)
    plain = run(method, quad20, max_iters=3, seed=7)
    for a, b in ((fused.x, plain.x), (fused.y, plain.y)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert fused.counts == plain.counts
    assert fused.counts["g_value"] == 3 * method.b1 * ((2 if name == "hf-zoba" else 1) + 4 * method.l1)


def test_point_set_layout_equals_the_points_written_out(quad20):
    """The in-place layout (with scales) is ``x + scale·dx`` segment after segment, reused across calls
    without leaking one evaluation's points into another's values."""
    gen = torch.Generator().manual_seed(3)
    x, y = quad20.x0, torch.randn(quad20.dim_inner, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 6, quad20.dim_inner, generator=gen, dtype=torch.float64)
    u = torch.randn(4, 6, quad20.dim_outer, generator=gen, dtype=torch.float64)
    xi = torch.randint(quad20.n_samples["g"], (4,), generator=gen)
    h = 1e-3
    points = zo.PointSet(x, y)
    points.add("base", samples=xi, shape=(4,))
    points.add("plus", dy=w, dy_scale=h, samples=xi[:, None].expand(4, 6))
    points.add("joint", dx=u, dx_scale=-h, dy=w, dy_scale=-h, samples=xi[:, None])
    points.add("shifted", dx=h * u, dy=y.expand(4, 6, -1), samples=xi[:, None])
    xs, ys, samples = points.points()
    want_x = torch.cat([x.expand(4, -1), x.expand(24, -1), (x - h * u).reshape(-1, quad20.dim_outer),
                        (x + h * u).reshape(-1, quad20.dim_outer)])
    want_y = torch.cat([y.expand(4, -1), (y + h * w).reshape(-1, quad20.dim_inner),
                        (y - h * w).reshape(-1, quad20.dim_inner), (2 * y).expand(24, -1)])
    torch.testing.assert_close(xs, want_x, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(ys, want_y, rtol=1e-15, atol=1e-15)
    assert torch.equal(samples, torch.cat([xi, *[xi[:, None].expand(4, 6).reshape(-1)] * 3]))
    oracle = Oracle(quad20)
    first = points.evaluate(oracle, "g")
    other = zo.PointSet(x + 1, y - 1)
    other.add("plus", dy=w, dy_scale=h, samples=xi[:, None].expand(4, 6))
    other.evaluate(oracle, "g")  # reuses the workspace
    again = points.evaluate(oracle, "g")
    direct = oracle.values("g", want_x, want_y, samples[:, None])
    for name, start, stop in (("base", 0, 4), ("plus", 4, 28), ("joint", 28, 52), ("shifted", 52, 76)):
        _close(first[name].reshape(-1), direct[start:stop])
        assert torch.equal(first[name], again[name])
    assert oracle.counts["g_value"] == 3 * 76 + 24


def test_point_set_values_that_view_their_points_are_kept(quad20):
    """A function returning a view of its point (here y[0], through vmap) keeps its values when the
    workspace is reused by the next evaluation."""
    problem = bilevel.BilevelProblem(f=lambda x, y: y[0], g=lambda x, y: y[0], x0=quad20.x0, y0=quad20.y0)
    oracle = Oracle(problem)
    w = torch.arange(12, dtype=torch.float64).reshape(3, 4, 1).expand(3, 4, quad20.dim_inner)
    first = zo.PointSet(problem.x0, problem.y0)
    first.add("plus", dy=w)
    values = first.evaluate(oracle, "g")["plus"]
    second = zo.PointSet(problem.x0, problem.y0 + 100)
    second.add("plus", dy=w)
    assert torch.equal(second.evaluate(oracle, "g")["plus"], values + 100)
    assert torch.equal(values, torch.arange(12, dtype=torch.float64).reshape(3, 4))


def test_point_set_keeps_the_graph_when_the_points_need_gradients(quad20):
    y = quad20.y0.clone().requires_grad_(True)
    points = zo.PointSet(quad20.x0, y)
    points.add("plus", dy=torch.ones(3, quad20.dim_inner, dtype=torch.float64), dy_scale=0.5)
    oracle = Oracle(quad20)
    oracle.fused = False
    values = points.evaluate(oracle, "g")["plus"]
    (grad,) = torch.autograd.grad(values.sum(), y)
    want = 3 * oracle.grad_y("g", quad20.x0, quad20.y0 + 0.5)
    torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [16, 40, 1024, 1027, 50_000, 2 * zo.NORMAL_BLOCK + 40])
def test_standard_normal_is_torch_randn(n):
    """The same numbers to rounding and the generator left in the same state (the tail of n mod 16 included)."""
    ours, theirs = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
    got = zo.standard_normal((n,), ours)
    want = torch.randn(n, generator=theirs, dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-13)
    assert torch.equal(ours.get_state(), theirs.get_state())
    assert zo._fast_normal_ok()
    single = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
    assert torch.equal(zo.standard_normal((3, 7), single[0], torch.float32),
                       torch.randn(3, 7, generator=single[1], dtype=torch.float32))


def test_vectorized_hook_is_checked():
    x0 = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="vectorized"):
        bilevel.BilevelProblem(f=lambda x, y: x.sum(), g=lambda x, y: y.sum(), x0=x0, y0=x0,
                               vectorized={"h": lambda xs, ys, b: xs.sum(1)})
    problem = bilevel.BilevelProblem(f=lambda x, y: x.sum(), g=lambda x, y: (y * y).sum(), x0=x0, y0=x0)
    assert problem.vectorized == {}
    ys = torch.arange(10, dtype=torch.float64).reshape(5, 2)
    assert torch.equal(Oracle(problem).values("g", ys, ys), (ys * ys).sum(1))  # vmap
