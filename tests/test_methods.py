"""ITD and AID: hypergradients against the closed form, convergence, budgets, divergence, seeds."""

import pandas as pd
import pytest
import torch
from conftest import rel

import bilevel
from bilevel import Oracle
from bilevel.components.hypergradients import implicit_hypergradient, unrolled_hypergradient
from bilevel.components.inner_solvers import gradient_descent
from bilevel.methods import ParameterError


def test_itd_equals_autograd_through_the_unrolled_loop(quad_small):
    """The hand-written adjoint recursion is exactly reverse mode through the unrolled steps."""
    p, T, lr = quad_small, 7, 0.5
    x = p.x0.clone()

    def unrolled(xx):
        y = p.y0
        for _ in range(T):
            y = y - lr * torch.func.grad(p.g, argnums=1)(xx, y)
        return p.f(xx, y)

    ours, _ = unrolled_hypergradient(Oracle(p), x, p.y0, lr, T)
    assert rel(ours, torch.func.grad(unrolled)(x)) < 1e-12


@pytest.mark.parametrize("solver", ["cg", "neumann", "fixed-point"])
def test_aid_matches_closed_form_on_100x100(quad100, solver):
    p = quad100
    lr = 1.0 / p.info["inner_L"]
    o = Oracle(p)
    y = gradient_descent(o, p.x0, p.y0, lr, 600)
    assert float((y - p.closed_form.y_star(p.x0)).norm()) < 1e-9  # inner solved to tolerance
    steps = {"cg": 200, "neumann": 600, "fixed-point": 600}[solver]
    h, _, info = implicit_hypergradient(o, p.x0, y, solver, steps, solver_lr=lr, solver_tol=1e-14)
    assert rel(h, p.closed_form.hypergradient(p.x0)) < 1e-6


def test_itd_matches_closed_form_on_100x100(quad100):
    p = quad100
    h, y = unrolled_hypergradient(Oracle(p), p.x0, p.y0, 1.0 / p.info["inner_L"], 600)
    assert rel(h, p.closed_form.hypergradient(p.x0)) < 1e-6


def test_method_oracle_counts_per_step(quad_small):
    p, T, K = quad_small, 5, 4
    o = Oracle(p)
    itd = bilevel.methods.make("itd", inner_steps=T, inner_lr=0.5)
    itd.step(o, itd.init(o, p.x0, p.y0, 0))
    assert o.counts == {"f_value": 0, "f_grad": 1, "f_hvp": 0, "f_hessian": 0,
                        "g_value": 0, "g_grad": T, "g_hvp": T, "g_hessian": 0}
    o = Oracle(p)
    aid = bilevel.methods.make("aid", inner_steps=T, inner_lr=0.5, solver="neumann", solver_steps=K)
    aid.step(o, aid.init(o, p.x0, p.y0, 0))
    # T inner gradients + 1 linearization of ∇_y g; K Neumann products + 1 cross product
    assert o.counts["g_grad"] == T + 1 and o.counts["g_hvp"] == K + 1 and o.counts["f_grad"] == 1


def test_run_converges_and_budgets(quad_small):
    p = quad_small
    method = bilevel.methods.make("aid", inner_steps=20, inner_lr=0.5, solver="cg", solver_steps=20, outer_lr=0.5)
    res = bilevel.run(method, p, max_iters=60, eval_every=10, seed=0)
    assert res.status == "completed"
    tr = res.trace
    assert list(tr["step"]) == [0, 10, 20, 30, 40, 50, 60]
    assert tr["hypergrad_norm2"].iloc[-1] < 1e-4 * tr["hypergrad_norm2"].iloc[0]
    assert (tr["oracle_calls"].diff().dropna() > 0).all() and (tr["time"].diff().dropna() >= 0).all()
    capped = bilevel.run(method, p, max_oracle_calls=100, eval_every=1, seed=0)
    per_step = capped.trace["oracle_calls"].iloc[1]
    assert capped.trace["oracle_calls"].iloc[-1] < 100 + per_step
    assert bilevel.run(method, p, max_seconds=0.05, seed=0).status == "completed"
    with pytest.raises(ValueError, match="budget"):
        bilevel.run(method, p)


def test_stochastic_itd_converges_with_minibatches(quad_small):
    method = bilevel.methods.make("itd", inner_steps=10, inner_lr=0.3, outer_lr=0.2, batch_size=16)
    res = bilevel.run(method, quad_small, max_iters=100, eval_every=50, seed=1)
    assert res.trace["hypergrad_norm2"].iloc[-1] < 0.1 * res.trace["hypergrad_norm2"].iloc[0]


def test_divergence_is_a_status_not_a_crash(quad_small):
    method = bilevel.methods.make("aid", inner_steps=5, inner_lr=0.5, outer_lr=1e30)
    res = bilevel.run(method, quad_small, max_iters=50, eval_every=5, seed=0)
    assert res.status == "diverged"
    assert (res.trace["status"] == "diverged").all()
    assert res.state.k < 50


def test_same_seed_same_numbers(quad_small):
    method = bilevel.methods.make("itd", inner_steps=5, inner_lr=0.3, outer_lr=0.2, batch_size=8)
    a = bilevel.run(method, quad_small, max_iters=20, eval_every=5, seed=3).trace.drop(columns="time")
    b = bilevel.run(method, quad_small, max_iters=20, eval_every=5, seed=3).trace.drop(columns="time")
    c = bilevel.run(method, quad_small, max_iters=20, eval_every=5, seed=4).trace.drop(columns="time")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_parameter_errors_name_the_parameter():
    with pytest.raises(ParameterError, match="outer_lr"):
        bilevel.methods.make("aid", outer_lr=-1.0)
    with pytest.raises(ParameterError, match="solver"):
        bilevel.methods.make("aid", solver="lu")
    with pytest.raises(ParameterError, match="inner_steps"):
        bilevel.methods.make("itd", inner_steps=2.5)
    with pytest.raises(ParameterError, match="unknown parameter"):
        bilevel.methods.make("itd", cg_steps=3)
    with pytest.raises(KeyError, match="unknown method"):
        bilevel.methods.make("nope")


def test_user_problem_with_two_lambdas():
    """A deterministic problem written as two lambdas (no batch argument)."""
    a = torch.tensor([1.0, -2.0], dtype=torch.float64)
    problem = bilevel.BilevelProblem(
        f=lambda x, y: ((y - a) ** 2).sum() + 0.1 * (x ** 2).sum(),
        g=lambda x, y: 0.5 * ((y - x) ** 2).sum(),
        x0=torch.zeros(2, dtype=torch.float64), y0=torch.zeros(2, dtype=torch.float64))
    res = bilevel.run(bilevel.methods.make("aid", inner_steps=30, inner_lr=0.5, outer_lr=0.3), problem,
                      max_iters=200, eval_every=50)
    # Ψ(x) = ‖x − a‖² + 0.1‖x‖²  ->  x* = a / 1.1
    assert rel(res.x, a / 1.1) < 1e-6
    with pytest.raises(ValueError, match="batch"):
        problem.call("f", problem.x0, problem.y0, torch.tensor([0]))


def test_evaluation_is_outside_the_timed_region(quad_small):
    import time

    def slow_metric(problem, x, y):
        time.sleep(0.05)
        return 0.0

    method = bilevel.methods.make("itd", inner_steps=2, inner_lr=0.5)
    res = bilevel.run(method, quad_small, max_iters=4, eval_every=1, metrics={"slow": slow_metric})
    assert len(res.trace) == 5 and res.trace["time"].iloc[-1] < 0.05  # 5 evaluations took >= 0.25 s


def test_aid_warm_started_fixed_point_removes_the_truncation_bias(quad_small):
    """5 fixed-point steps from v = 0 give a biased hypergradient (descent stalls); warm-starting v
    from the previous outer step accumulates the solve across steps and descent converges."""
    final = {}
    for warm in (True, False):
        method = bilevel.methods.make("aid", inner_steps=10, inner_lr=0.5, solver="fixed-point", solver_steps=5,
                                      solver_lr=0.5, warm_start_v=warm, outer_lr=0.5)
        tr = bilevel.run(method, quad_small, max_iters=80, eval_every=40, seed=0).trace
        final[warm] = tr["hypergrad_norm2"].iloc[-1] / tr["hypergrad_norm2"].iloc[0]
    assert final[True] < 1e-8 and final[False] > 1e-2


@pytest.mark.parametrize("name", [n for n in bilevel.methods.available() if not bilevel.methods.make(n).uses_torch_func])
def test_methods_marked_autograd_only_never_call_torch_func(name, monkeypatch, quad_small):
    """The runners skip torch.func's start-up for methods with ``uses_torch_func = False``: their steps must not
    touch a torch.func transform (else that start-up would be charged to their first timed step)."""
    import bilevel.oracle as oracle_module
    from bilevel.methods.online import OnlineMethod
    from bilevel.online import run_online
    from bilevel.problems import make_online_quadratic

    def forbidden(*args, **kwargs):
        raise AssertionError(f"{name} called a torch.func transform")

    for transform in ("vmap", "hessian", "grad", "jacrev", "jacfwd"):
        monkeypatch.setattr(oracle_module.tf, transform, forbidden)
    method = bilevel.methods.make(name)
    if isinstance(method, OnlineMethod):
        result = run_online(method, make_online_quadratic(dim=2, sigma=0.1), 4, seed=0)
    else:
        result = bilevel.run(method, quad_small, max_iters=3, seed=0)
    assert len(result.trace) >= 1


def test_every_method_class_of_the_package_is_registered():
    """Registration is by decorator in each module and discovery is automatic: every concrete method class
    (one that sets its own ``name``) of every module of ``bilevel.methods`` is in the registry, and the
    registered classes are re-exported by class name."""
    import importlib
    import inspect
    import pkgutil

    from bilevel.methods.base import Method

    found = set()
    for info in pkgutil.iter_modules(bilevel.methods.__path__):
        module = importlib.import_module(f"bilevel.methods.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Method) and cls is not Method and cls.__module__ == module.__name__ and "name" in vars(cls):
                found.add(cls.name)
                assert bilevel.methods.get(cls.name) is cls and getattr(bilevel.methods, cls.__name__) is cls
    assert found == set(bilevel.methods.available())


def test_register_decorator_adds_a_method(monkeypatch):
    from dataclasses import dataclass

    from bilevel.methods import registry
    from bilevel.methods.base import Method

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @bilevel.methods.register
    @dataclass(frozen=True)
    class Toy(Method):
        name = "toy"
        positive = ("lr",)
        lr: float = 0.1

    assert "toy" in bilevel.methods.available() and bilevel.methods.make("toy", lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="already registered"):
        bilevel.methods.register(dataclass(frozen=True)(type("Other", (Method,), {"name": "toy"})))

    @dataclass(frozen=True)
    class Unnamed(Toy):
        pass

    with pytest.raises(ValueError, match="no name of its own"):
        bilevel.methods.register(Unnamed)


def test_bools_are_not_numbers():
    for name, params in (("aid", {"outer_lr": True}), ("itd", {"inner_steps": True}), ("zoba", {"l1": True}),
                         ("sogd", {"gamma": False}), ("zmdsba", {"cross_scale": True})):
        with pytest.raises(ParameterError, match=next(iter(params))):
            bilevel.methods.make(name, **params)
