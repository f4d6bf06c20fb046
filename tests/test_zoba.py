"""ZOBA-paper methods converge on problems with known solutions; PZOBO matches the closed form; the attack."""

import pytest
import torch
from conftest import rel

import bilevel
from bilevel.oracle import Oracle
from bilevel.problems.attack import margin_loss
from bilevel.run import run


@pytest.fixture(scope="module")
def well_conditioned():
    """Inner and outer spectra in [20, 20]·(1 ± 0.2): the defaults' step 0.01 is a sensible step here."""
    scale = 20.0
    return bilevel.problems.make("quadratic", dim_inner=5, dim_outer=5, n_samples_inner=256, n_samples_outer=256,
                                 mu_inner=scale, L_inner_inner=scale, L_outer_inner=scale, L_cross_inner=scale / 10,
                                 L_inner_outer=scale, L_outer_outer=scale, L_cross_outer=scale / 10, seed=0)


@pytest.mark.parametrize("name", ["zoba", "hf-zoba"])
def test_single_loop_zeroth_order_methods_decrease_the_hypergradient_100x(well_conditioned, name):
    """From the reference defaults (γ0 = 0.01, r = 2, h = 1e-3, l1 = 100, l2 = 1, b1 = 25, b2 = 10)."""
    result = run(bilevel.methods.make(name), well_conditioned, max_iters=800, eval_every=800, seed=1)
    start, end = result.trace["hypergrad_norm2"].iloc[[0, -1]]
    assert result.status == "completed"
    assert start / end >= 100, (start, end)


def test_soba_converges(well_conditioned):
    result = run(bilevel.methods.make("soba", step_size=0.02), well_conditioned, max_iters=800, eval_every=800, seed=1)
    start, end = result.trace["hypergrad_norm2"].iloc[[0, -1]]
    assert start / end >= 1e3, (start, end)


def test_zmdsba_decreases_the_hypergradient(well_conditioned):
    result = run(bilevel.methods.make("zmdsba", outer_lr=0.003, inner_lr=2e-4, solver_lr=2e-4), well_conditioned,
                 max_iters=200, eval_every=200, seed=1)
    start, end = result.trace["hypergrad_norm2"].iloc[[0, -1]]
    assert start / end >= 10, (start, end)


def test_pzobo_hypergradient_matches_the_closed_form_as_mu_shrinks():
    """Nonlinear y*(x) (logistic regression): with converged paths and the d coordinate directions the
    estimate differs from the implicit-function hypergradient by O(μ)."""
    problem = bilevel.problems.make("l2_logistic", dataset="breast-cancer", seed=0)
    exact = problem.closed_form.hypergradient(problem.x0)
    errors = []
    for mu in (1e-1, 1e-2, 1e-3):
        method = bilevel.methods.make("pzobo", inner_steps=300, inner_lr=0.5, n_directions=problem.dim_outer,
                                      directions="coordinate", mu=mu)
        oracle = Oracle(problem)
        estimate, _ = method.hypergradient(oracle, problem.x0, problem.y0, method.init(oracle, problem.x0,
                                                                                        problem.y0, 0))
        errors.append(rel(estimate, exact))
        assert oracle.counts["g_grad"] == 300 * (problem.dim_outer + 1) and oracle.counts["f_grad"] == 1
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 5e-3, errors
    assert 5 < errors[0] / errors[1] < 20 and 5 < errors[1] / errors[2] < 20  # first order in μ


def test_pzobo_main_path_end_quirk_changes_the_estimate(quad_small):
    oracle = Oracle(quad_small)
    outs = []
    for start in ("same_start", "main_path_end"):
        m = bilevel.methods.make("pzobo", perturbed_start=start, n_directions=3)
        outs.append(m.hypergradient(oracle, quad_small.x0, quad_small.y0, m.init(oracle, quad_small.x0,
                                                                                quad_small.y0, 2))[0])
    assert not torch.allclose(outs[0], outs[1])


def test_margin_loss_is_the_cw_margin():
    scores = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    labels = torch.tensor([0, 0])
    assert torch.allclose(margin_loss(scores, labels, 0.0), torch.tensor([1.0, 0.0]))  # 3-2; max(0-5, -0)
    assert torch.allclose(margin_loss(scores, labels, 2.0), torch.tensor([1.0, -2.0]))


def test_attack_problem_queries_a_trained_classifier():
    problem = bilevel.problems.make("blackbox_attack", dataset="mnist", resolution=7, n_train=10, n_val=10,
                                    n_test=40, classifier={"hidden": 32, "epochs": 10, "rows": 500}, seed=1)
    info = problem.info
    assert info["classifier"]["accuracy"]["held_out"] > 0.7  # well above chance (0.1)
    assert problem.dim_inner == problem.dim_outer == 49 and info["rows"] == {"train": 10, "val": 10, "test": 40}
    x, y = problem.x0, problem.y0
    assert info["metrics"]["accuracy_under_attack"](problem, x, y) == 1.0  # only correctly classified images
    oracle = Oracle(problem)
    oracle.values("g", x.expand(6, -1), y.expand(6, -1), torch.arange(6)[:, None])
    assert oracle.counts["g_value"] == 6  # one query per image and point
    big = torch.full_like(y, 0.3)
    assert float(problem.g(x, big)) > float(problem.f(x, big))  # the regulariser is in g only
    with pytest.raises(ValueError, match="resolution"):
        bilevel.problems.make("blackbox_attack", resolution=5, classifier={"epochs": 1, "rows": 500})
