"""Linear solvers against a direct solve; counted products."""

import pandas as pd
import pytest
import torch
from conftest import rel

from bilevel.components.linear_solvers import conjugate_gradient, fixed_point, neumann_series


@pytest.fixture
def spd():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    A = m @ m.T / 30 + 0.5 * torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    return A, b, torch.linalg.solve(A, b)


def counted(A):
    calls = []

    def mv(v):
        calls.append(1)
        return A @ v

    return mv, calls


def test_cg_exact_in_n_steps_and_counts(spd):
    A, b, sol = spd
    mv, calls = counted(A)
    v, info = conjugate_gradient(mv, b, max_iter=200, tol=1e-13)
    assert rel(v, sol) < 1e-10
    assert len(calls) == info["iterations"] <= 30
    v2, info2 = conjugate_gradient(mv, b, max_iter=200, tol=1e-13, v0=v)  # warm start at the solution
    assert info2["iterations"] <= 1 and rel(v2, sol) < 1e-10


def test_neumann_and_fixed_point_agree_and_converge(spd):
    A, b, sol = spd
    lr = 1.0 / float(torch.linalg.eigvalsh(A)[-1])
    mv, calls = counted(A)
    vn, _ = neumann_series(mv, b, lr, 5)
    assert len(calls) == 5
    vf, _ = fixed_point(mv, b, lr, 6)  # 6 iterations from zero = 5 Neumann terms, 5 products
    assert len(calls) == 10 and torch.allclose(vn, vf)
    vlong, _ = neumann_series(mv, b, lr, 3000)
    assert rel(vlong, sol) < 1e-8


def test_named_solvers_share_one_calling_convention(spd):
    """Every registered solver takes ``(matvec, b, *, steps, lr, tol, v0)`` and returns ``(v, info)`` with the
    iteration count and residual; the names are those of the mapping, nowhere else."""
    from bilevel.components.linear_solvers import SOLVERS, get_solver
    from bilevel.methods import AID

    A, b, sol = spd
    lr = 1.0 / float(torch.linalg.eigvalsh(A)[-1])
    for name, solve in SOLVERS.items():
        assert get_solver(name) is solve
        v, info = solve(lambda u: A @ u, b, steps=400, lr=lr, tol=1e-13, v0=None)
        assert rel(v, sol) < 1e-6 and {"iterations", "residual"} <= set(info), name
    assert AID.choices["solver"] is SOLVERS
    with pytest.raises(ValueError, match="unknown linear solver"):
        get_solver("lu")


def my_cg(matvec, b, *, steps, lr, tol, v0):
    """A user solver: plain CG from zero (the library's, through the common convention)."""
    return conjugate_gradient(matvec, b, steps, tol=tol)


def test_aid_takes_a_user_solver_and_records_it_by_name(quad_small):
    import bilevel

    named = bilevel.methods.make("aid", solver="cg", solver_steps=5)
    custom = bilevel.methods.make("aid", solver=my_cg, solver_steps=5)
    a = bilevel.run(named, quad_small, max_iters=3, seed=0).trace.drop(columns="time")
    b = bilevel.run(custom, quad_small, max_iters=3, seed=0).trace.drop(columns="time")
    pd.testing.assert_frame_equal(a, b)  # same solver, same numbers
    params = custom.params()
    assert params["solver"] == f"{__name__}.my_cg" and named.params()["solver"] == "cg"
    with pytest.raises(bilevel.methods.ParameterError, match="solver"):
        bilevel.methods.make("aid", solver=3)
