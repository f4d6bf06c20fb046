"""The penalty hyper-objective L*_λ: gradient and Hessian against finite differences, the HVP form
against the explicit Hessian, and the O(1/λ) approach of ∇L*_λ to the exact hypergradient."""

import pytest
import torch

import bilevel
from bilevel.components.inner_solvers import accelerated_gradient_descent
from bilevel.components.penalty import penalty_gradient, penalty_hessian, penalty_hvp, penalty_value

DT = torch.float64


def newton(fun, x, y, iters=50):
    """Exact inner minimizer of a smooth strongly convex ``fun(x, ·)`` by Newton's method."""
    for _ in range(iters):
        yy = y.detach().requires_grad_(True)
        g = torch.autograd.grad(fun(x, yy), yy)[0]
        if float(g.norm()) < 1e-13:
            break
        H = torch.autograd.functional.hessian(lambda v: fun(x, v), y)
        y = y - torch.linalg.solve(H, g)
    return y.detach()


def inner_solutions(problem, x, lam):
    y = newton(lambda a, b: problem.f(a, b) + lam * problem.g(a, b), x, problem.y0)
    z = newton(problem.g, x, problem.y0)
    return y, z


@pytest.fixture(scope="module")
def logistic():
    return bilevel.problems.make("l2_logistic", dataset="breast-cancer", seed=2)


def test_gradient_and_hessian_match_finite_differences(logistic):
    oracle, lam = bilevel.Oracle(logistic), 10.0
    x = 0.2 * torch.randn(10, dtype=DT, generator=torch.Generator().manual_seed(1))

    def value(x):
        y, z = inner_solutions(logistic, x, lam)
        return float(penalty_value(oracle, x, y, z, lam))

    def gradient(x):
        y, z = inner_solutions(logistic, x, lam)
        return penalty_gradient(oracle, x, y, z, lam)

    eps, eye = 1e-5, torch.eye(10, dtype=DT)
    fd_grad = torch.tensor([(value(x + eps * e) - value(x - eps * e)) / (2 * eps) for e in eye], dtype=DT)
    torch.testing.assert_close(gradient(x), fd_grad, atol=1e-8, rtol=1e-6)
    y, z = inner_solutions(logistic, x, lam)
    H = penalty_hessian(oracle, x, y, z, lam)
    fd_hess = torch.stack([(gradient(x + eps * e) - gradient(x - eps * e)) / (2 * eps) for e in eye])
    torch.testing.assert_close(H, 0.5 * (fd_hess + fd_hess.T), atol=1e-6, rtol=1e-5)
    # the Hessian-free product equals the explicit Hessian times v
    v = torch.randn(10, dtype=DT, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(penalty_hvp(oracle, x, y, z, lam, v, cg_steps=100, cg_tol=1e-14), H @ v,
                               atol=1e-9, rtol=1e-7)


def test_penalty_gradient_approaches_hypergradient_at_rate_one_over_lambda(quad_small):
    oracle = bilevel.Oracle(quad_small)
    x = quad_small.x0 + 0.3
    exact = quad_small.closed_form.hypergradient(x)
    errors = []
    for lam in (10.0, 100.0, 1000.0, 10000.0):
        y, z = inner_solutions(quad_small, x, lam)
        errors.append(float((penalty_gradient(oracle, x, y, z, lam) - exact).norm()))
    ratios = [errors[i] / errors[i + 1] for i in range(3)]
    assert all(8.0 < r < 12.0 for r in ratios), (errors, ratios)  # error ∝ 1/λ
    assert errors[-1] < 1e-3 * float(exact.norm())


def test_agd_solves_the_inner_problem(quad_small):
    oracle = bilevel.Oracle(quad_small)
    x = quad_small.x0
    y = accelerated_gradient_descent(lambda v: oracle.grad_y("g", x, v), quad_small.y0, lr=0.5, momentum=0.5, steps=200)
    torch.testing.assert_close(y, quad_small.closed_form.y_star(x), atol=1e-10, rtol=0)
