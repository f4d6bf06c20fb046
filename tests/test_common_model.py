"""The common model y_c(x) = argmin_y g(x, y): every metric of the upper decision x is a function of x alone.

With x held fixed (each configured method wrapped so that state.x is reset to x0 after every step, while
its inner / penalty updates run as usual), on the problems of FSBA Figures 2 (breast-cancer, with and
without the closed form), 3 (per-feature regularisation) and 5 (multi-class hyper-cleaning) at small
sizes, with every method of those figures as configured in config/config.yaml: every reported metric of
x stays constant over the run and agrees across methods, while the method's own iterate moves.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import bilevel
from bilevel.experiments.config import load_config, method_spec
from bilevel.problems.implicit import MODEL_MAX_HVP, LowerSolver, _grads, common_model, newton_cg

CONFIG = load_config()
#: the problems of the figures, small: 60 rows of each part on breast-cancer (FSBA's full Hessians are then
#: 71 x 71), 100 of real MNIST digits (784 features, 10 classes: 7,840 / 7,850 inner variables)
SMALL = {"train": 60, "val": 60, "test": 60}
DIGITS = {"dataset": "mnist5k", "train": 100, "val": 100, "test": 100}
CASES = {
    "fig2-closed-form": ("fsba_fig2_cleaning", {"dataset": "breast-cancer", "noise": 0.5, **SMALL}),
    "fig2-no-closed-form": ("fsba_fig2_cleaning", {"dataset": "breast-cancer", "noise": 0.5, "closed_form": False,
                                                   **SMALL}),
    "fig3-small": ("fsba_fig3_regularization", DIGITS),
    "fig5-small": ("fsba_fig5_hypercleaning", DIGITS),
}
STEPS = 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread, as the workflow's jobs (small products: threads only add contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _problem(experiment: str, overrides: dict):
    prob = CONFIG["experiments"][experiment]["problem"]
    return bilevel.problems.make(prob["name"], **{**prob.get("params", {}), **overrides, "seed": 1})


def _frozen(method, x0: torch.Tensor):
    """``method`` whose outer iterate is put back to ``x0`` after every step (its inner updates still run)."""
    class Frozen(type(method)):
        def step(self, oracle, state):
            state = super().step(oracle, state)
            state.x = x0.clone()
            return state

    return Frozen(**{f.name: getattr(method, f.name) for f in dataclasses.fields(method) if f.init})


def _metrics_of_x(problem) -> list[str]:
    """The reported metrics that judge x: the problem's own (but the method's-iterate diagnostics) and the
    closed-form ones."""
    own = [k for k in problem.info["metrics"] if not k.startswith("iterate_")]
    closed = ["hyperobjective", "hypergrad_norm2"] if problem.closed_form is not None else []
    return own + closed


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_of_x_are_constant_and_shared_by_every_method(case):
    experiment, overrides = CASES[case]
    exp_cfg = CONFIG["experiments"][experiment]
    traces, moved = {}, {}
    for label in exp_cfg["methods"]:
        if exp_cfg["methods"][label].get("enabled", True) is False:
            continue
        mname, params = method_spec(exp_cfg, label, "optimization")
        problem = _problem(experiment, overrides)  # a fresh problem (and solver) per method
        result = bilevel.run(_frozen(bilevel.methods.make(mname, **params), problem.x0), problem, max_iters=STEPS, eval_every=1,
                             seed=1)
        assert result.status == "completed", label
        assert torch.equal(result.x, problem.x0), label
        traces[label] = result.trace
        moved[label] = float(result.trace["upper_objective"].max() - result.trace["upper_objective"].min())
    names = _metrics_of_x(problem)
    assert {"validation_loss", "test_loss", "test_accuracy", "model_grad_norm"} <= set(names)
    reference = traces[next(iter(traces))].iloc[0]
    for label, trace in traces.items():
        assert len(trace) == STEPS + 1
        for name in names:
            values = trace[name].to_numpy()
            if math.isnan(reference[name]):
                assert all(math.isnan(v) for v in values), (label, name)
                continue
            if "accuracy" in name or name.startswith(("corrupted", "clean")):  # exactly
                assert all(v == reference[name] for v in values), (label, name, values)
            else:  # to the solver's tolerance (a deterministic solve from y0: in fact identical)
                assert values == pytest.approx(reference[name], rel=1e-9, abs=1e-12), (label, name, values)
        assert trace["model_grad_norm"].max() <= problem.info["model_tol"]
    assert max(moved.values()) > 0, "no method moved its inner iterate: the test would show nothing"
    if problem.closed_form is not None:  # the common model is the closed form's y*(x): validation loss = Ψ(x)
        assert reference["validation_loss"] == reference["hyperobjective"]


def test_newton_cg_matches_the_closed_form():
    """Matrix-free Newton-CG reaches ``model_tol`` and its validation loss agrees with the exact Ψ(x)."""
    problem = _problem("fsba_fig2_cleaning", {"dataset": "breast-cancer", "noise": 0.25, "model_solver": "newton-cg",
                                              "model_tol": 1e-9})
    assert problem.info["model_solver"] == "newton-cg"
    metrics = problem.info["metrics"]
    x = torch.randn(problem.dim_outer, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert metrics["model_grad_norm"](problem, x, problem.y0) <= 1e-9
    assert metrics["validation_loss"](problem, x, problem.y0) == pytest.approx(float(problem.closed_form.value(x)),
                                                                            rel=1e-8)


def test_the_lower_solver_is_a_function_of_x():
    """Same x, same model (the solve always starts from y0; the cache serves only the identical x), and the
    automatic choice: full-Hessian Newton up to 200 variables, Newton-CG above."""
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(40, 300, generator=gen, dtype=torch.float64)

    def g(x, y):
        return 0.5 * torch.mean((A @ y - x) ** 2) + torch.sum(torch.log(torch.cosh(y))) / 300 + 1e-2 * torch.dot(y, y)

    x0, x1, x2 = (torch.randn(40, generator=gen, dtype=torch.float64) for _ in range(3))
    solver = common_model(g, torch.zeros(300, dtype=torch.float64), tol=1e-8, anchor=x0)
    assert solver.solver == "newton-cg"
    assert common_model(g, torch.zeros(200, dtype=torch.float64)).solver == "newton"
    a = solver(x1).clone()
    solver(x2)
    for other in (common_model(g, torch.zeros(300, dtype=torch.float64), tol=1e-8, anchor=x0),
                  LowerSolver(g, torch.zeros(300, dtype=torch.float64), 1e-8, "newton-cg", memory=1, anchor=x0)):
        other(x2)  # another history
        assert torch.equal(other(x1), a)
    assert solver.stats(x1)["grad_norm"] <= 1e-8 and solver.stats(x1)["hvp"] > 0
    newton = LowerSolver(g, torch.zeros(300, dtype=torch.float64), 1e-10, "newton")
    assert torch.allclose(newton(x1), a, atol=1e-6)
    with pytest.raises(ValueError, match="model_solver"):
        common_model(g, torch.zeros(3, dtype=torch.float64), solver="lbfgs")
    with pytest.raises(ValueError, match="model_tol"):
        bilevel.problems.make("data_cleaning", model_tol=0.0)


def test_newton_cg_stops_at_its_hessian_vector_product_cap():
    """An ill-conditioned g (curvatures 1e-4 .. 1e4) needs many CG iterations: with ``max_hvp`` the solve stops
    after at most that many products, flags it, and still improves on the start; it is as deterministic."""
    d = torch.logspace(-4, 4, 400, dtype=torch.float64)
    target = torch.linspace(-1.0, 1.0, 400, dtype=torch.float64)

    def g(x, y):
        return 0.5 * torch.sum(d * (y - target) ** 2) + x * torch.sum(y**4)

    x, y0 = torch.tensor(1e-3, dtype=torch.float64), torch.zeros(400, dtype=torch.float64)
    free = newton_cg(g, x, y0.clone(), 1e-10, 100, 1000)[1]
    assert not free["capped"] and free["grad_norm"] <= 1e-10 and free["hvp"] > 50
    y, capped = newton_cg(g, x, y0.clone(), 1e-10, 100, 1000, max_hvp=50)
    assert capped["capped"] and capped["hvp"] == 50
    start_norm = float(torch.linalg.vector_norm(_grads(g, x, y0)[1]))
    assert capped["grad_norm"] < start_norm
    assert torch.equal(newton_cg(g, x, y0.clone(), 1e-10, 100, 1000, max_hvp=50)[0], y)
    assert common_model(g, torch.zeros(400, dtype=torch.float64)).max_hvp == MODEL_MAX_HVP
