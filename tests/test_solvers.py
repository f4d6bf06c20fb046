"""Linear solvers against a direct solve; counted products."""

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
