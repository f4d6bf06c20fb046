"""The library's edge: bad input to bilevel.run and the problem containers is refused with a message that names
the argument and the fix, before any method runs (not torch's message from deep inside a method)."""

import pytest
import torch

import bilevel

A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
TARGET = torch.tensor([1.0, -1.0], dtype=torch.float64)


def f(x, y):
    return ((y - TARGET) ** 2).sum()


def g(x, y):
    return 0.5 * y @ A @ y - x @ y


def zeros(n):
    return torch.zeros(n, dtype=torch.float64)


def aid():
    return bilevel.methods.make("aid", inner_steps=5, solver="cg", solver_steps=5)


def test_a_nan_start_is_refused():
    x0 = torch.tensor([float("nan"), 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x0 must be finite: 1 entry is NaN or infinite \(first at index 0\)"):
        bilevel.BilevelProblem(f=f, g=g, x0=x0, y0=zeros(2))
    with pytest.raises(ValueError, match="y0 must be finite"):
        bilevel.MinimaxProblem(f=f, x0=zeros(2), y0=torch.tensor([0.0, float("inf")], dtype=torch.float64))


def test_a_vector_valued_objective_is_named():
    problem = bilevel.BilevelProblem(f=lambda x, y: (y - TARGET) ** 2, g=g, x0=zeros(2), y0=zeros(2))
    with pytest.raises(ValueError, match=r"f\(x0, y0\) of problem 'custom' must return a scalar .* shape \(2,\)"):
        bilevel.run(aid(), problem, max_iters=2)


def test_a_shape_mismatch_names_the_sizes():
    problem = bilevel.BilevelProblem(f=f, g=g, x0=zeros(3), y0=zeros(2))
    with pytest.raises(ValueError, match=r"g\(x0, y0\) .* failed: .* x0 \(shape \(3,\)\) and y0 \(shape \(2,\)\)"):
        bilevel.run(aid(), problem, max_iters=2)


def test_a_non_finite_objective_at_the_start_is_refused():
    problem = bilevel.BilevelProblem(f=lambda x, y: f(x, y) / 0.0 * 0.0, g=g, x0=zeros(2), y0=zeros(2))
    with pytest.raises(ValueError, match=r"f\(x0, y0\) of problem 'custom' is nan"):
        bilevel.run(aid(), problem, max_iters=2)


def test_a_minimax_method_needs_a_minimax_problem():
    problem = bilevel.BilevelProblem(f=f, g=g, x0=zeros(2), y0=zeros(2))
    with pytest.raises(TypeError, match="lmcn is a minimax method: run it on a bilevel.MinimaxProblem"):
        bilevel.run(bilevel.methods.make("lmcn"), problem, max_iters=2)
    with pytest.raises(TypeError, match="problem must be a bilevel.BilevelProblem or MinimaxProblem"):
        bilevel.run(aid(), {"f": f}, max_iters=2)


def test_a_valid_user_problem_still_runs():
    problem = bilevel.BilevelProblem(f=f, g=g, x0=zeros(2), y0=zeros(2))
    result = bilevel.run(aid(), problem, max_iters=3)
    assert result.status == "completed" and len(result.trace) == 4
