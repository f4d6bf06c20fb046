"""SOBBO (our reconstruction, ``bilevel.methods.sobbo``): the round's hypergradient and the three Bregman
steps against closed forms, the window average, regret on the drifting quadratic, variance reduction by
the window, counts per round, determinism, bad parameters."""

import math

import numpy as np
import pytest
import torch

import bilevel
from bilevel import methods
from bilevel.methods import ParameterError
from bilevel.methods.sobbo import MIRROR_MAPS, mirror_step
from bilevel.online import run_online
from bilevel.oracle import Oracle
from bilevel.problems import BilevelProblem, make_online_quadratic
from bilevel.problems.online import BilevelStream

MAPS = MIRROR_MAPS


def test_registered_and_listed():
    assert "sobbo" in bilevel.methods.available()
    assert methods.make("sobbo").problem_kind == "online"


def _expected_step(mirror_map, x, h, alpha, accumulated, eps=1e-8):
    """Closed forms of the three separable Bregman steps, then the clip onto X = [−1, 1]."""
    if mirror_map == "euclidean":
        new = x - alpha * h
    elif mirror_map == "adagrad":
        new = x - alpha * h / (eps + math.sqrt(accumulated))
    else:
        new = x * math.exp(-alpha * h)
    return min(1.0, max(-1.0, new))


@pytest.mark.parametrize("mirror_map", MAPS)
def test_rounds_match_the_closed_form(mirror_map):
    """Noise-free 1-D stream (``specs/sogd.md`` §2.4): one inner step y ← y − β(y − x + a²_t); at (x, y) the
    implicit hypergradient with ∇²_yy g = 1, ∇²_xy g = −1 is h = x + 2a¹_t + y − a²_t (CG is exact in 1-D);
    the window average with weights ν^i/W; the mirror step of each map; Π_X = clip to [−1, 1]."""
    stream = make_online_quadratic(dim=1, sigma=0.0)
    alpha, beta, decay, w = 0.3, 0.5, 0.7, 3
    method = methods.make("sobbo", alpha=alpha, beta=beta, window_size=w, decay=decay, mirror_map=mirror_map)
    state = method.init(None, stream.x0, stream.y0, 0)
    gen = torch.Generator().manual_seed(0)
    x, y, past, acc = 1.0, 0.0, [], 0.0
    for t in range(1, 9):
        state = method.step([Oracle(stream.round(t, gen))], state, stream.project)
        a1, a2 = 1 / t, 1 / math.sqrt(t)
        y = y - beta * (y - x + a2)
        h = x + 2 * a1 + y - a2
        past = [h, *past][:w]
        weights = [decay**i for i in range(len(past))]
        avg = sum(wi * hi for wi, hi in zip(weights, past, strict=True)) / sum(weights)
        acc += avg * avg
        x = _expected_step(mirror_map, x, avg, alpha, acc)
        assert float(state.hypergradient[1]) == pytest.approx(h, rel=1e-12, abs=1e-14)
        assert float(state.y) == pytest.approx(y, rel=1e-12, abs=1e-14)
        assert float(state.x) == pytest.approx(x, rel=1e-12, abs=1e-14)


def test_mirror_steps_are_the_bregman_minimisers():
    """argmin_x ⟨h, x⟩ + D_φ(x, x₀)/α: the gradient of the objective vanishes at the step (∇φ(x) = ∇φ(x₀) − α h)."""
    x0 = torch.tensor([0.3, 1.2, 2.0], dtype=torch.float64)
    h = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    alpha = 0.2
    grads = {"euclidean": lambda x: x, "adagrad": lambda x: scale * x, "entropy": lambda x: torch.log(x)}
    for name in MAPS:
        x = mirror_step(name, x0, h, alpha, scale)
        assert torch.allclose(grads[name](x), grads[name](x0) - alpha * h, atol=1e-14), name
    with pytest.raises(ValueError, match="unknown mirror map"):
        mirror_step("nope", x0, h, alpha)


def test_euclidean_sobbo_is_sobow_with_one_inner_step():
    """With φ = ½‖·‖² and one inner step, SOBBO's round is SOBOW's (the same numbers)."""
    stream = make_online_quadratic(dim=2, sigma=0.3)
    common = dict(alpha=0.2, beta=0.4, window_size=4, decay=0.8, cg_steps=3)
    a = run_online(methods.make("sobbo", **common), stream, 25, seed=3, eval_every=5)
    b = run_online(methods.make("sobow", **common), stream, 25, seed=3, eval_every=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert np.array_equal(a.trace["regret"].to_numpy(), b.trace["regret"].to_numpy())


@pytest.mark.parametrize("mirror_map", MAPS)
def test_tracks_the_drifting_minimiser_with_sublinear_regret(mirror_map):
    """Noise-free stream, x*_t = 1/√t − 1/t (interior for t ≥ 2): x_T ends near x*_T and the average
    regret BL-Reg_T / T falls by 5x from T = 20 to T = 200."""
    stream = make_online_quadratic(dim=3, sigma=0.0)
    result = run_online(methods.make("sobbo", alpha=0.2, beta=0.5, mirror_map=mirror_map), stream, 200, seed=0,
                        eval_every=20)
    assert float(torch.max(torch.abs(result.x - stream.info["x_star"](200)))) < 0.02, result.x
    average = result.trace.set_index("step")["average_regret"]
    assert average[200] < average[20] / 5, average


def test_window_averaging_reduces_the_variance_of_the_direction():
    """The abstract's variance reduction: on a noisy unconstrained stream (σ = 1) the direction of the
    outer step, h̄_t = (x_t − x_{t+1})/α, is closer to the exact ∇F_t(x_t) with a window of 8 (ν = 1) than
    of 1 (mean squared error over 150 rounds, past a burn-in of 10)."""
    stream = make_online_quadratic(dim=1, sigma=1.0, box=None)
    alpha = 0.05

    def direction_error(window):
        method = methods.make("sobbo", alpha=alpha, beta=0.5, window_size=window, decay=1.0)
        state = method.init(None, stream.x0, stream.y0, 0)
        gen, errors = torch.Generator().manual_seed(11), []
        for t in range(1, 151):
            x = state.x
            state = method.step([Oracle(stream.round(t, gen))], state, stream.project)
            if t > 10:
                errors.append(float((x - state.x) / alpha - stream.hypergradient(t, x)) ** 2)
        return float(np.mean(errors))

    assert direction_error(8) < 0.4 * direction_error(1)  # measured 0.25 (1/8 without drift)


def _stream_with_curvature(dim=4):
    """A stream whose inner Hessian diag(1, 2, ..., d) needs d CG iterations (so cg_steps < d are all used)."""
    diag = torch.arange(1, dim + 1, dtype=torch.float64)

    def make_round(t, generator):
        shift = torch.randn(dim, generator=generator, dtype=torch.float64)

        def f(x, y):
            return 0.5 * torch.sum((y - 1.0) ** 2) + 0.5 * torch.sum(x * x)

        def g(x, y):
            return 0.5 * torch.sum(diag * y * y) - torch.sum((x + shift) * y)

        return BilevelProblem(f=f, g=g, x0=torch.zeros(dim, dtype=torch.float64),
                              y0=torch.zeros(dim, dtype=torch.float64))

    zero = torch.zeros(dim, dtype=torch.float64)
    return BilevelStream(make_round=make_round, x0=zero.clone() + 0.5, y0=zero.clone())


@pytest.mark.parametrize("inner_steps,cg_steps,warm_start", [(1, 3, True), (3, 2, False), (0, 0, True)])
def test_counts_per_round_follow_the_formula(inner_steps, cg_steps, warm_start):
    """g gradients inner_steps + 1, g products cg_steps + 1 (+1 for the warm start's initial residual from
    the second round on), f gradients 1; no values."""
    stream = _stream_with_curvature()
    method = methods.make("sobbo", inner_steps=inner_steps, cg_steps=cg_steps, warm_start=warm_start)
    state = method.init(None, stream.x0, stream.y0, 0)
    gen = torch.Generator().manual_seed(5)
    for t in range(1, 5):
        oracle = Oracle(stream.round(t, gen))
        state = method.step([oracle], state, stream.project)
        warm = int(warm_start and t >= 2)
        assert oracle.counts == {"f_value": 0, "f_grad": 1, "f_hvp": 0, "f_hessian": 0, "g_value": 0,
                                 "g_grad": inner_steps + 1, "g_hvp": cg_steps + 1 + warm, "g_hessian": 0}, t


def test_same_seed_same_numbers():
    stream = make_online_quadratic(dim=2, sigma=0.5)
    method = methods.make("sobbo", mirror_map="adagrad", alpha=0.05)
    a, b = (run_online(method, stream, 30, seed=7, eval_every=3) for _ in range(2))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.trace.drop(columns=["time", "cumulative_time"]).equals(b.trace.drop(columns=["time", "cumulative_time"]))
    c = run_online(method, stream, 30, seed=8, eval_every=3)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize("params,match", [({"mirror_map": "simplex"}, "mirror_map"), ({"window_size": 0}, "window_size"),
                                          ({"alpha": 0.0}, "alpha"), ({"decay": -0.5}, "decay"),
                                          ({"cg_steps": -1}, "cg_steps"), ({"inner_steps": 1.5}, "inner_steps"),
                                          ({"adagrad_eps": 0}, "adagrad_eps")])
def test_bad_parameters_are_refused_by_name(params, match):
    with pytest.raises(ParameterError, match=f"sobbo: parameter {match} "):
        methods.make("sobbo", **params)


def test_entropy_needs_a_positive_start():
    stream = make_online_quadratic(dim=1, sigma=0.0, x0_value=-0.5)
    with pytest.raises(ValueError, match="positive initial point"):
        run_online(methods.make("sobbo", mirror_map="entropy"), stream, 2)
