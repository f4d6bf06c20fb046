"""Online bilevel optimization: the drifting-quadratic stream, the exact regret, SOGD / OAGD / SOBOW / OGD."""

import math

import numpy as np
import pytest
import torch

import bilevel
from bilevel import methods
from bilevel.methods.online import ball
from bilevel.online import projected_gradient, run_online
from bilevel.oracle import Oracle
from bilevel.problems import make_online_quadratic


def test_stream_closed_forms_match_autograd():
    """y*_t(x) = x − a²_t minimises g_t, and ∇F_t(x) = 2x + 2a¹_t − 2a²_t is the implicit hypergradient."""
    stream = make_online_quadratic(dim=3, sigma=0.0)
    gen = torch.Generator().manual_seed(0)
    for t in (1, 4, 9):
        problem = stream.round(t, gen)
        x = torch.tensor([0.3, -0.2, 0.7], dtype=torch.float64)
        y_star = stream.info["y_star"](t, x)
        oracle = Oracle(problem)
        assert torch.allclose(oracle.grad_y("g", x, y_star), torch.zeros(3, dtype=torch.float64), atol=1e-14)
        # implicit function theorem: ∇F = ∇_x f − ∇²_xy g [∇²_yy g]⁻¹ ∇_y f with ∇²_yy g = I, ∇²_xy g = −I
        fx, fy = oracle.grad("f", x, y_star)
        assert torch.allclose(stream.hypergradient(t, x), fx + fy, atol=1e-14)
        assert torch.allclose(stream.hypergradient(t, x), 2 * x + 2 / t - 2 / math.sqrt(t), atol=1e-14)


def test_noise_is_additive_on_gradients_and_shared_within_a_round():
    stream = make_online_quadratic(dim=2, sigma=0.5)
    problem = stream.round(3, torch.Generator().manual_seed(1))
    clean = make_online_quadratic(dim=2, sigma=0.0).round(3, torch.Generator().manual_seed(1))
    oracle, exact = Oracle(problem), Oracle(clean)
    pts = [(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)),
           (torch.ones(2, dtype=torch.float64), -torch.ones(2, dtype=torch.float64))]
    shifts = [torch.cat(oracle.grad("f", x, y)) - torch.cat(exact.grad("f", x, y)) for x, y in pts]
    assert torch.allclose(shifts[0], shifts[1]) and float(torch.linalg.vector_norm(shifts[0])) > 0
    v = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert torch.allclose(oracle.hvp("g", *pts[0], dy=v)[1], v)  # second-order products stay exact


def _replay_regret(method, stream, rounds, seed):
    """Direct evaluation: play the rounds by hand and sum ‖P_{X,α_t}(x_t; ∇F_t(x_t))‖² with the closed form."""
    data = torch.Generator().manual_seed(seed + 1)
    state = method.init(None, stream.x0, stream.y0, seed)
    total, out = 0.0, []
    for t in range(1, rounds + 1):
        oracle = Oracle(stream.round(t, data))
        x = state.x
        a = method.steps(t)["alpha"] if hasattr(method, "steps") else method.alpha
        grad = 2 * x + 2 / t - 2 / math.sqrt(t)
        total += float(torch.sum(((x - torch.clamp(x - a * grad, -1.0, 1.0)) / a) ** 2))
        out.append(total)
        state = method.step([oracle], state, stream.project)
    return out


@pytest.mark.parametrize("name,params", [("sogd", {"alpha": 0.5, "beta": 0.5, "delta": 0.5}),
                                         ("sogd", {"schedule": "theory", "alpha": 0.8}),
                                         ("sobow", {"alpha": 0.5, "window_size": 1})])
def test_workflow_regret_matches_a_direct_evaluation(name, params):
    stream = make_online_quadratic(dim=1, sigma=0.3)  # X = [−1, 1], x_1 = 1: the projection is active early
    method = methods.make(name, **params)
    trace = run_online(method, stream, 6, seed=4, eval_every=1).trace
    assert np.allclose(trace["regret"].to_numpy(), _replay_regret(method, stream, 6, 4), rtol=1e-12)


def test_projected_gradient_and_ball():
    stream = make_online_quadratic(dim=2, sigma=0.0, box=1.0)
    x = torch.tensor([1.0, 0.0], dtype=torch.float64)
    p = torch.tensor([-3.0, 2.0], dtype=torch.float64)
    # first coordinate is clipped at the boundary: (1 − 1)/α = 0; second is interior: p itself
    assert torch.allclose(projected_gradient(stream, x, p, 0.5), torch.tensor([0.0, 2.0], dtype=torch.float64))
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert torch.allclose(ball(v, 1.0), v / 5) and torch.equal(ball(v, 10.0), v) and torch.equal(ball(v, None), v)


@pytest.mark.parametrize("name,params", [("sogd", {"alpha": 0.1, "beta": 0.5, "delta": 0.5, "gamma": 0.5,
                                                   "lam": 0.5, "eta": 0.5}),
                                         ("oagd", {"alpha": 0.1, "beta": 0.5})])
def test_hypergradient_tracking_error_goes_to_the_noise_floor(name, params):
    """Noiseless: the tracking error ‖d^x_t − ∇F_t(x_t)‖² vanishes; with oracle noise σ it settles at O(σ²)."""
    rounds = 400
    quiet = run_online(methods.make(name, **params), make_online_quadratic(dim=2, sigma=0.0), rounds, seed=0).trace
    assert quiet["hypergrad_tracking_error"].iloc[-1] < 1e-5  # OAGD: plus the truncated Neumann bias
    assert quiet["hypergrad_tracking_error"].iloc[-1] < 1e-3 * quiet["hypergrad_tracking_error"].iloc[:50].max()
    sigma = 0.1
    noisy = run_online(methods.make(name, **params), make_online_quadratic(dim=2, sigma=sigma), rounds, seed=0).trace
    tail = noisy["hypergrad_tracking_error"].iloc[-200:]
    assert float(tail.median()) < 20 * sigma**2 * 2  # d = 2 coordinates, a few noisy terms each
    assert float(tail.median()) > 1e-4 * sigma**2  # and not below the noise: the estimate is noisy


def test_theory_schedule_tames_the_noise():
    """With σ = 1, the decreasing steps of eq. (15) accumulate less regret than a constant step (T = 600)."""
    stream = make_online_quadratic(dim=1, sigma=1.0)
    const = run_online(methods.make("sogd", alpha=0.1, beta=0.5, delta=0.5), stream, 600, seed=1, eval_every=600)
    theory = run_online(methods.make("sogd", schedule="theory", alpha=0.3), stream, 600, seed=1, eval_every=600)
    assert theory.trace["regret"].iloc[-1] < 0.5 * const.trace["regret"].iloc[-1]


def test_ogd_keeps_x_and_online_methods_count_their_oracle_calls():
    stream = make_online_quadratic(dim=1, sigma=0.0)
    ogd = run_online(methods.make("ogd", beta=0.5), stream, 50, seed=0, eval_every=50)
    assert torch.equal(ogd.x, stream.x0)
    sogd = run_online(methods.make("sogd"), stream, 10, seed=0, eval_every=10).trace.iloc[-1]
    # round 1: 2 gradients of f/g + 1 product; later rounds twice that (the correction at the previous point)
    assert (sogd["g_grad"], sogd["f_grad"], sogd["g_hvp"]) == (19, 19, 19)
    assert run_online(methods.make("sogd"), stream, 10, seed=0, eval_every=3).counts["g_hvp"] == 19
    oagd = run_online(methods.make("oagd", window_size=3, neumann_steps=2), stream, 10, seed=0, eval_every=10)
    assert oagd.trace.iloc[-1]["g_grad"] > 10  # past rounds are re-evaluated


def test_online_methods_reject_bad_parameters():
    with pytest.raises(methods.ParameterError, match="gamma"):
        methods.make("sogd", gamma=1.5)
    with pytest.raises(methods.ParameterError, match="momentum_convention"):
        methods.make("sogd", momentum_convention="heavy")
    with pytest.raises(TypeError, match="online method"):
        run_online(methods.make("aid"), make_online_quadratic(), 5)
    with pytest.raises(TypeError, match="run_online"):
        bilevel.run(methods.make("sogd"), bilevel.problems.make("quadratic", dim_inner=2, dim_outer=2), max_iters=1)


@pytest.mark.parametrize("law,crn", [("sphere", True), ("gaussian", True), ("sphere", False)])
def test_zo_sogd_estimates_are_unbiased(law, crn):
    """ZO-SOGD's (19)-(21) estimates: mean of 400 draws within 5 standard errors of the autograd values of
    ∇_y g, ∇_y f + ∇²_yy g·v and ∇_x f + ∇²_xy g·v, coordinatewise (finite-sum quadratic, sampled batches:
    central differences are exact per direction, so only sampling noise remains)."""
    problem = bilevel.problems.make("quadratic", dim_inner=5, dim_outer=3, n_samples_inner=64, n_samples_outer=32,
                                    mu_inner=0.3, seed=3)
    gen = torch.Generator().manual_seed(5)
    x, y, v = (torch.randn(n, generator=gen, dtype=torch.float64) for n in (3, 5, 5))
    oracle = Oracle(problem)
    exact_gy = oracle.grad_y("g", x, y)
    fx, fy = oracle.grad("f", x, y)
    hxy_v, hyy_v = oracle.hvp("g", x, y, dy=v)
    method = methods.make("zo-sogd", b_f=4, b_g=4, direction_law=law, crn=crn, rho_r=0.1, rho_s=0.1, rho_v=0.1)
    state = method.init(None, x, y, 0)
    draws = torch.stack([torch.cat(method.estimates(oracle, x, y, v, method.draws(oracle, state, x, y)))
                         for _ in range(400)])
    exact = torch.cat([exact_gy, fy + hyy_v, fx + hxy_v])
    mean, se = draws.mean(0), draws.std(0) / 400**0.5
    assert torch.all((mean - exact).abs() <= 5 * se + 1e-8), f"mean {mean} vs exact {exact} (se {se})"


def test_zo_sogd_counts_values_only_and_tracks_the_hypergradient():
    stream = make_online_quadratic(dim=2, sigma=0.0)
    method = methods.make("zo-sogd", alpha=0.1, beta=0.5, delta=0.5, gamma=0.5, lam=0.5, eta=0.5, b_f=5, b_g=5,
                          rho_r=0.01, rho_s=0.01)
    trace = run_online(method, stream, 300, seed=0, eval_every=1).trace
    last = trace.iloc[-1]
    assert last["f_grad"] == last["g_grad"] == last["g_hvp"] == 0
    assert last["g_value"] == 10 * 5 * (2 * 300 - 1) and last["f_value"] == 4 * 5 * (2 * 300 - 1)
    assert trace["hypergrad_tracking_error"].iloc[-50:].median() < 0.1 * trace["hypergrad_tracking_error"].iloc[:20].max()


def test_adam_variant_runs_and_differs():
    stream = make_online_quadratic(dim=2, sigma=0.1)
    plain = run_online(methods.make("sogd"), stream, 50, seed=2, eval_every=50)
    adam = run_online(methods.make("sogd", optimizer="adam", alpha=0.01, beta=0.01), stream, 50, seed=2, eval_every=50)
    assert adam.status == plain.status == "completed"
    assert not torch.allclose(adam.x, plain.x)


def test_online_experiment_jobs_aggregate_and_claims():
    """The workflow's online job kind: one phase per case, tidy rows, claims evaluated on the aggregate."""
    import pandas as pd

    from bilevel.experiments import aggregate, check_config
    from bilevel.experiments import get as get_experiment
    from bilevel.experiments.sogd import regret_exponent

    cfg = {"problem": {"name": "online_quadratic", "params": {"dim": 1}},
           "cases": {"sigma0": {"sigma": 0.0}, "sigma1": {"sigma": 1.0}}, "seeds": [1],
           "methods": {"sogd": {"method": "sogd", "params": {"schedule": "theory", "alpha": 0.3}},
                       "oagd": {"method": "oagd", "params": {"window_size": 2, "neumann_steps": 2}},
                       "sobow": {"method": "sobow", "params": {"cg_steps": 2}}},
           "online": {"rounds": 200, "eval_every": 20}}
    check_config({"experiments": {"sogd_regret": cfg}})
    experiment = get_experiment("sogd_regret")
    rows = pd.concat([experiment.run_job(experiment.name, cfg, label, 1) for label in cfg["methods"]], ignore_index=True)
    assert set(rows["phase"]) == {"sigma0", "sigma1"}
    assert {"regret", "average_regret", "hypergrad_tracking_error"} <= set(rows["metric"])
    agg = aggregate(rows)
    assert regret_exponent(agg, "sogd", "sigma1") < 1.0
    verdicts = {claim.id: claim.check(agg, cfg) for claim in experiment.claims}
    assert all(v.holds is not None for v in verdicts.values()), verdicts


@pytest.mark.parametrize("name,params", [("zo-gd", {"lr": 0.2}), ("zo-adam", {"lr": 0.05}), ("zo-signsgd", {"lr": 0.01}),
                                         ("zo-conservsgd", {"lr": 0.2})])
def test_single_level_zeroth_order_baselines_solve_the_inner_problem_with_x_fixed(name, params):
    """On a stationary stream (no drift: p1 = p2 = 0) the attackers drive y to y*(x0) from values only,
    never moving x; ZO-ConservSGD never increases the measured loss."""
    stream = make_online_quadratic(dim=3, sigma=0.0, p1=0.0, p2=0.0, box=None, x0_value=2.0)  # y* = 1
    method = methods.make(name, n_directions=4, **params)
    result = run_online(method, stream, 300, seed=0, eval_every=1)
    trace = result.trace
    assert torch.equal(result.x, stream.x0)
    assert trace["inner_distance"].iloc[-1] < 0.01 * trace["inner_distance"].iloc[0]
    assert trace.iloc[-1]["g_grad"] == trace.iloc[-1]["g_hvp"] == 0 and trace.iloc[-1]["g_value"] > 0
    if name == "zo-conservsgd":
        g = Oracle(stream.round(1, torch.Generator())).problem.g
        state = method.init(None, stream.x0, stream.y0, 0)
        values = []
        for t in range(1, 40):
            state = method.step([Oracle(stream.round(t, torch.Generator()))], state)
            values.append(float(g(stream.x0, state.y)))
        assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
