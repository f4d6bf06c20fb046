"""Zeroth-order estimators against closed forms (statistical tests), counts, batched == looped."""

import pytest
import torch

import bilevel
from bilevel.components import zeroth_order as zo
from bilevel.methods.base import make_generator
from bilevel.oracle import Oracle
from bilevel.run import run

REPLICATES = 400


@pytest.fixture(scope="module")
def quad():
    """A small deterministic-data quadratic (full batch): every finite difference is exact up to round-off."""
    return bilevel.problems.make("quadratic", dim_inner=6, dim_outer=4, n_samples_inner=64, n_samples_outer=32,
                                 mu_inner=0.3, seed=3)


def _exact(problem, level, x, y, v):
    """∇_x h, ∇_y h, ∇²_yy h·v, ∇²_xy h·v by autograd."""
    oracle = Oracle(problem)
    gx, gy = oracle.grad(level, x, y)
    return {"grad_x": gx, "grad_y": gy, "hvp": oracle.hvp_yy(level, x, y, v), "cross": oracle.cross_xy(level, x, y, v)}


def _draws(estimate, replicates=REPLICATES):
    return torch.stack([estimate() for _ in range(replicates)])


def _assert_unbiased(draws: torch.Tensor, exact: torch.Tensor, what: str):
    """Mean of the draws within 5 standard errors of the exact value, coordinatewise (plus round-off)."""
    mean, se = draws.mean(0), draws.std(0) / draws.shape[0] ** 0.5
    assert torch.all((mean - exact).abs() <= 5 * se + 1e-8), f"{what}: mean {mean} vs exact {exact} (se {se})"


def _point(problem, gen):
    x = torch.randn(problem.dim_outer, generator=gen, dtype=torch.float64)
    y = torch.randn(problem.dim_inner, generator=gen, dtype=torch.float64)
    v = torch.randn(problem.dim_inner, generator=gen, dtype=torch.float64)
    return x, y, v


@pytest.mark.parametrize("law", zo.DIRECTION_LAWS)
def test_directions_have_identity_second_moment(law):
    gen = make_generator(0)
    u = zo.directions(law, (20000,), 5, gen)
    second = torch.einsum("ki,kj->ij", u, u) / u.shape[0]
    assert torch.allclose(second, torch.eye(5, dtype=torch.float64), atol=0.06)
    if law == "sphere":
        assert torch.allclose(torch.linalg.vector_norm(u, dim=1), torch.full((20000,), 5 ** 0.5, dtype=torch.float64))


def test_coordinate_rows_cover_each_coordinate_once():
    u = zo.directions("coordinate", (3, 5), 5, make_generator(1))
    assert torch.equal((u != 0).sum(1), torch.ones(3, 5, dtype=torch.long))  # each coordinate once per row
    u = zo.directions("coordinate", (2, 7), 5, make_generator(1))  # more directions than coordinates: cycles
    assert int((u != 0).sum()) == 14


def test_second_order_estimators_refuse_non_gaussian_directions():
    w = torch.ones(1, 1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="Gaussian"):
        zo.stein_hessian_vector(torch.ones(1, 1, dtype=torch.float64), w, torch.ones(3, dtype=torch.float64),
                                law="sphere")


@pytest.mark.parametrize("level", ["g", "f"])
def test_zoba_estimators_are_unbiased_on_a_quadratic(quad, level):
    """Every estimator of ZOBA §3.4, built from one PointSet evaluation, averages to its exact target."""
    gen = make_generator(7)
    x, y, v = _point(quad, gen)
    exact = _exact(quad, level, x, y, v)
    oracle, h, b, l = Oracle(quad), 1e-3, 1, 5

    def draw():
        w = zo.directions("gaussian", (b, l), quad.dim_inner, gen)
        u = zo.directions("gaussian", (b, l), quad.dim_outer, gen)
        pts = zo.PointSet(x, y)
        pts.add("base", shape=(b,))
        pts.add("plus", dy=h * w)
        pts.add("minus", dy=-h * w)
        pts.add("jplus", dx=h * u, dy=h * w)
        pts.add("jminus", dx=-h * u, dy=-h * w)
        pts.add("x", dx=h * u)
        val = pts.evaluate(oracle, level)
        return torch.cat([
            zo.central_difference(val["plus"], val["minus"], h, w),
            zo.forward_difference(val["plus"], val["base"], h, w),
            zo.forward_difference(val["x"], val["base"], h, u),
            zo.stein_hessian_vector(zo.second_difference(val["plus"], val["minus"], val["base"], h), w, v),
            zo.stein_cross(zo.second_difference(val["jplus"], val["jminus"], val["base"], h), w, u, v),
        ])

    draws = _draws(draw)
    p, d = quad.dim_inner, quad.dim_outer
    splits = torch.split(draws, [p, p, d, p, d], dim=1)
    targets = [exact["grad_y"], exact["grad_y"], exact["grad_x"], exact["hvp"], exact["cross"]]
    names = ["central ∇_y", "forward ∇_y", "forward ∇_x", "Stein ∇²_yy·v", "Stein ∇²_xy·v"]
    for draws_i, target, name in zip(splits, targets, names, strict=True):
        _assert_unbiased(draws_i, target, name)


def test_hf_zoba_mixed_difference_is_unbiased(quad):
    """HF-ZOBA §4: (∇̂_y g(y + h̄v) − ∇̂_y g(y))/h̄ → ∇²_yy g·v and the x-part → ∇²_xy g·v, any direction law."""
    gen = make_generator(8)
    x, y, v = _point(quad, gen)
    exact = _exact(quad, "g", x, y, v)
    oracle, h, hb = Oracle(quad), 1e-3, 1e-3
    for law in ("gaussian", "sphere", "coordinate"):
        def draw(law=law):
            w = zo.directions(law, (1, 3), quad.dim_inner, gen)
            u = zo.directions(law, (1, 3), quad.dim_outer, gen)
            pts = zo.PointSet(x, y)
            pts.add("b0", shape=(1,))
            pts.add("b1", dy=(hb * v).expand(1, -1))
            pts.add("y0", dy=h * w)
            pts.add("y1", dy=hb * v + h * w)
            pts.add("x0", dx=h * u)
            pts.add("x1", dx=h * u, dy=(hb * v).expand(1, 3, -1))
            val = pts.evaluate(oracle, "g")
            hvp = (zo.forward_difference(val["y1"], val["b1"], h, w) - zo.forward_difference(val["y0"], val["b0"], h, w))
            cross = (zo.forward_difference(val["x1"], val["b1"], h, u)
                     - zo.forward_difference(val["x0"], val["b0"], h, u))
            return torch.cat([hvp / hb, cross / hb])

        draws = _draws(draw)
        _assert_unbiased(draws[:, :quad.dim_inner], exact["hvp"], f"HF ∇²_yy·v ({law})")
        _assert_unbiased(draws[:, quad.dim_inner:], exact["cross"], f"HF ∇²_xy·v ({law})")


def test_variance_falls_as_directions_grow(quad):
    """The central-difference gradient's variance scales like 1/l (here l = 4 vs 40: ratio near 10)."""
    gen = make_generator(9)
    x, y, _ = _point(quad, gen)
    oracle, h = Oracle(quad), 1e-3

    def variance(n_dirs):
        def draw():
            w = zo.directions("gaussian", (1, n_dirs), quad.dim_inner, gen)
            pts = zo.PointSet(x, y)
            pts.add("plus", dy=h * w)
            pts.add("minus", dy=-h * w)
            val = pts.evaluate(oracle, "g")
            return zo.central_difference(val["plus"], val["minus"], h, w)
        return float(_draws(draw).var(0).sum())

    ratio = variance(4) / variance(40)
    assert 6 < ratio < 16, ratio


def test_pzobo_response_jacobian_is_unbiased(quad):
    """For a quadratic g the paths are affine in x, so (y_q − y)/μ = J_N u_q exactly and the mean → J_Nᵀ a."""
    gen = make_generator(10)
    x, y0, a = _point(quad, gen)
    oracle = Oracle(quad)
    lr, steps = 0.3, 30

    def path(xx):
        return bilevel.components.inner_solvers.gradient_descent(oracle, xx, y0, lr, steps)

    main = path(x)
    eye = torch.eye(quad.dim_outer, dtype=torch.float64)
    jac = torch.stack([path(x + eye[i]) - main for i in range(quad.dim_outer)], dim=1)  # exact: affine in x

    def draw():
        u = zo.directions("gaussian", (1, 2), quad.dim_outer, gen)[0]
        perturbed = torch.stack([path(x + 0.1 * u[q]) for q in range(2)])
        return zo.response_jacobian_product(perturbed, main, 0.1, u, a)

    _assert_unbiased(_draws(draw, 200), jac.T @ a, "PZOBO Jᵀa")


@pytest.mark.parametrize("name,per_g,per_f", [("zoba", lambda b, l: b * (1 + 4 * l), lambda b, l: b * (1 + 2 * l)),
                                              ("hf-zoba", lambda b, l: b * (2 + 4 * l), lambda b, l: b * (1 + 2 * l))])
def test_evaluation_counts_match_the_formulas(quad, name, per_g, per_f):
    """specs/zoba.md §3.6 / §4: b1(1 + 4 l1) + b2(1 + 2 l2) (ZOBA), b1(2 + 4 l1) + b2(1 + 2 l2) (HF-ZOBA)."""
    method = bilevel.methods.make(name, l1=7, l2=3, b1=5, b2=4)
    result = run(method, quad, max_iters=3, seed=0)
    assert result.counts["g_value"] == 3 * per_g(5, 7)
    assert result.counts["f_value"] == 3 * per_f(4, 3)
    assert sum(v for k, v in result.counts.items() if not k.endswith("value")) == 0  # values only
    defaults = bilevel.methods.make(name)
    assert per_g(defaults.b1, defaults.l1) in (10025, 10050) and per_f(defaults.b2, defaults.l2) == 30


@pytest.mark.parametrize("name", ["zoba", "hf-zoba", "zmdsba", "zdsba"])
def test_batched_and_looped_steps_give_identical_numbers(quad, name):
    """The evaluation layout changes the speed, never the numbers or the counts."""
    small = {"zoba": dict(l1=4, b1=3, b2=2, l2=2), "hf-zoba": dict(l1=4, b1=3, b2=2, l2=2),
             "zmdsba": dict(inner_steps=3, outer_samples=5, solver_steps=2),
             "zdsba": dict(inner_steps=3, inner_directions=2, outer_samples=5, neumann_terms=3, hessian_samples=2)}[name]
    results = [run(bilevel.methods.make(name, evaluation=mode, **small), quad, max_iters=3, seed=4)
               for mode in zo.EVALUATION_MODES]
    for other in results[1:]:
        assert torch.allclose(other.x, results[0].x, rtol=0, atol=1e-12)
        assert torch.allclose(other.y, results[0].y, rtol=0, atol=1e-12)
        assert other.counts == results[0].counts


def test_zmdsba_cross_matrix_estimates_the_cross_hessian(quad):
    """E[Ĉ] = ∇²_yx g with the unbiased normalisation; ``cross_scale=2`` doubles it (the reference)."""
    x, y, _ = _point(quad, make_generator(11))
    oracle = Oracle(quad)
    exact = oracle.hessian("g", x, y)["yx"]  # p×d
    for scale in (1, 2):
        method = bilevel.methods.make("zmdsba", outer_samples=50, cross_scale=scale)
        state = method.init(oracle, x, y, seed=scale)
        draws = _draws(lambda m=method, s=state: m.estimates(oracle, s)["cross"].reshape(-1), 300)
        _assert_unbiased(draws, scale * exact.reshape(-1), f"ZMDSBA cross matrix (cross_scale={scale})")


def test_zmdsba_inner_loop_is_the_point_set_layout_on_the_direct_path(quad):
    """ZMDSBA's sequential inner loop (step 1) evaluates the same 2 points per step, in the same order, as
    the PointSet layout it replaced: bitwise the same iterate and the same counts, on the direct path."""
    method = bilevel.methods.make("zmdsba", inner_steps=6)

    def reference(oracle, state):
        y = state.y
        for t in range(method.inner_steps):
            w = method._dirs(state, 1, y.numel())
            points = zo.PointSet(state.x, y)
            xi = oracle.sample("g", 1, state.rng)
            points.add("base", samples=xi, shape=(1,))
            points.add("plus", dy=method.mu2 * w[:, None], samples=xi[:, None])
            g = points.evaluate(oracle, "g")
            y = y - method.inner_lr / (t + 1) ** 0.5 * zo.forward_difference(g["plus"], g["base"], method.mu2, w[:, None])
        return y

    x, y, _ = _point(quad, make_generator(12))
    ours, theirs = Oracle(quad), Oracle(quad)
    assert Oracle.direct_up_to >= 2  # a 2-point call skips vmap
    got = method.inner_loop(ours, method.init(ours, x, y, 5))
    want = reference(theirs, method.init(theirs, x, y, 5))
    assert torch.equal(got, want)
    assert ours.counts == theirs.counts and ours.counts["g_value"] == 2 * method.inner_steps
