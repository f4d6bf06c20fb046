"""The counting oracle: derivatives against closed forms / autograd, exact counts."""

import pytest
import torch
from conftest import rel

from bilevel import BilevelProblem, Oracle
from bilevel.oracle import HESSIAN_WEIGHT


@pytest.fixture
def explicit():
    """g = ½ yᵀAy + xᵀCy + ½‖x‖² ... with known blocks; f = ‖y − 1‖² + sin(x)·1."""
    gen = torch.Generator().manual_seed(0)
    d, p = 3, 4
    m = torch.randn(p, p, generator=gen, dtype=torch.float64)
    A = m @ m.T + p * torch.eye(p, dtype=torch.float64)
    C = torch.randn(d, p, generator=gen, dtype=torch.float64)
    B = torch.diag(torch.arange(1.0, d + 1, dtype=torch.float64))

    def g(x, y):
        return 0.5 * y @ A @ y + x @ C @ y + 0.5 * x @ B @ x

    def f(x, y):
        return ((y - 1) ** 2).sum() + torch.sin(x).sum() * (y ** 2).sum()

    prob = BilevelProblem(f=f, g=g, x0=torch.zeros(d, dtype=torch.float64), y0=torch.zeros(p, dtype=torch.float64))
    return prob, A, B, C


def test_second_order_blocks(explicit):
    prob, A, B, C = explicit
    o = Oracle(prob)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    v, u = torch.randn(4, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)
    assert rel(o.hvp_yy("g", x, y, v), A @ v) < 1e-12
    assert rel(o.cross_xy("g", x, y, v), C @ v) < 1e-12
    hx, hy = o.hvp("g", x, y, dx=u, dy=v)
    assert rel(hx, B @ u + C @ v) < 1e-12 and rel(hy, C.T @ u + A @ v) < 1e-12
    vs = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    assert rel(o.hvps_yy("g", x, y, vs), vs @ A) < 1e-12
    gy, pullback = o.grad_y_with_pullback("g", x, y)
    assert rel(gy, A @ y + C.T @ x) < 1e-12
    cx, cyy = pullback(v)
    assert rel(cx, C @ v) < 1e-12 and rel(cyy, A @ v) < 1e-12
    H = o.hessian("g", x, y)
    assert rel(H["yy"], A) < 1e-12 and rel(H["xy"], C) < 1e-12 and rel(H["xx"], B) < 1e-12


def test_first_order_against_autograd(explicit):
    prob, *_ = explicit
    o = Oracle(prob)
    x, y = torch.linspace(-1, 1, 3, dtype=torch.float64), torch.linspace(0, 2, 4, dtype=torch.float64)
    ax, ay = torch.func.grad(prob.f, argnums=(0, 1))(x, y)
    gx, gy = o.grad("f", x, y)
    assert rel(gx, ax) < 1e-14 and rel(gy, ay) < 1e-14
    assert rel(o.grad_x("f", x, y), ax) < 1e-14 and rel(o.grad_y("f", x, y), ay) < 1e-14
    # cross block of f where f is not bilinear: ∇²_xy f v = 2 cos(x) (y·v)
    v = torch.ones(4, dtype=torch.float64)
    assert rel(o.cross_xy("f", x, y, v), 2 * torch.cos(x) * (y @ v)) < 1e-12


def test_batched_values_one_call(quad_small):
    o = Oracle(quad_small)
    xs = torch.randn(7, quad_small.dim_outer, dtype=torch.float64)
    ys = torch.randn(7, quad_small.dim_inner, dtype=torch.float64)
    vals = o.values("g", xs, ys)
    assert torch.allclose(vals, torch.stack([quad_small.g(a, b) for a, b in zip(xs, ys, strict=True)]))
    per_point = torch.randint(64, (7, 3), generator=torch.Generator().manual_seed(0))
    vals = o.values("g", xs, ys, per_point)
    assert torch.allclose(vals, torch.stack([quad_small.g(a, b, i) for a, b, i in zip(xs, ys, per_point, strict=True)]))
    assert o.counts["g_value"] == 14


@pytest.mark.parametrize("n", [1, 2, Oracle.direct_up_to])
def test_small_values_take_the_direct_path_with_the_same_numbers_and_counts(quad_small, n):
    """B <= ``direct_up_to`` points: direct calls, point after point; the values equal the vectorized ones up
    to float rounding, for full data, a shared batch and per-point batches, and count B values."""
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(n, quad_small.dim_outer, generator=gen, dtype=torch.float64)
    ys = torch.randn(n, quad_small.dim_inner, generator=gen, dtype=torch.float64)
    for batch in (None, torch.randint(64, (5,), generator=gen), torch.randint(64, (n, 3), generator=gen)):
        direct, vectorized = Oracle(quad_small), Oracle(quad_small)
        vectorized.direct_up_to = 0
        a, b = direct.values("g", xs, ys, batch), vectorized.values("g", xs, ys, batch)
        assert a.shape == b.shape == (n,)
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
        assert direct.counts == vectorized.counts and direct.counts["g_value"] == n


def test_counts_equal_hand_computed(explicit):
    prob, *_ = explicit
    o = Oracle(prob)
    x, y, v = prob.x0, prob.y0, torch.ones(4, dtype=torch.float64)
    o.value("f", x, y)                                   # f_value 1
    o.values("g", torch.zeros(5, 3, dtype=torch.float64), torch.zeros(5, 4, dtype=torch.float64))  # g_value 5
    o.grad("f", x, y)                                    # f_grad 1
    o.grad_y("g", x, y)
    o.grad_x("g", x, y)                                  # g_grad 2
    o.hvp_yy("g", x, y, v)
    o.cross_xy("g", x, y, v)
    o.hvp("g", x, y, dy=v)                               # g_hvp 3
    o.hvps_yy("g", x, y, torch.ones(4, 4, dtype=torch.float64))  # g_hvp +4
    _, pb = o.grad_y_with_pullback("g", x, y)            # g_grad +1
    pb(v)
    pb(v)                                                # g_hvp +2
    o.hessian("f", x, y)                                 # f_hessian 1
    assert o.counts == {"f_value": 1, "f_grad": 1, "f_hvp": 0, "f_hessian": 1,
                        "g_value": 5, "g_grad": 3, "g_hvp": 9, "g_hessian": 0}
    assert o.oracle_calls == 1 + HESSIAN_WEIGHT * 1 + 3 + 9 and o.function_evals == 6  # a Hessian = HESSIAN_WEIGHT


def test_sampling_and_bad_level(quad_small):
    o = Oracle(quad_small)
    gen = torch.Generator().manual_seed(0)
    idx = o.sample("g", 10, gen)
    assert idx.shape == (10,) and int(idx.max()) < 64
    assert o.sample("g", None, gen) is None
    with pytest.raises(ValueError, match="level"):
        o.grad("h", quad_small.x0, quad_small.y0)
