"""Cubic sub-problem solvers against each other and against brute-force minimization of the model."""

import math

import pytest
import torch

from bilevel.components.cubic import cubic_model, cubic_step_exact, cubic_step_gd, cubic_step_separable, symmetric_eig

DT = torch.float64


def brute_force(g, H, M, restarts=20, steps=3000):
    """Minimize m(s) by L-BFGS from many random starts (independent of the secular equation)."""
    gen = torch.Generator().manual_seed(0)
    best, best_val = None, math.inf
    for k in range(restarts):
        s = (torch.randn(g.shape, generator=gen, dtype=DT) * (0.1 + k)).requires_grad_(True)
        opt = torch.optim.LBFGS([s], lr=1, max_iter=steps, tolerance_grad=1e-14, tolerance_change=1e-16,
                                line_search_fn="strong_wolfe")

        def closure(s=s, opt=opt):
            opt.zero_grad()
            val = cubic_model(g, H @ s, s, M)
            val.backward()
            return val

        opt.step(closure)
        val = float(cubic_model(g, H @ s.detach(), s.detach(), M))
        if val < best_val:
            best, best_val = s.detach().clone(), val
    return best, best_val


def random_case(d, seed, lam_min=-1.0):
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=DT))
    lam = torch.linspace(lam_min, 3.0, d, dtype=DT)
    return torch.randn(d, generator=gen, dtype=DT), Q @ torch.diag(lam) @ Q.T, Q


@pytest.mark.parametrize(("d", "seed", "lam_min", "M"), [(2, 0, -1.0, 1.0), (5, 1, -1.0, 10.0), (8, 2, 0.5, 0.3),
                                                       (6, 3, -2.0, 0.5)])
def test_exact_solver_is_the_global_minimizer(d, seed, lam_min, M):
    g, H, _ = random_case(d, seed, lam_min)
    s = cubic_step_exact(g, H, M)
    r = float(s.norm())
    # optimality conditions: (H + M r/2 I) s = −g and H + M r/2 I ⪰ 0
    torch.testing.assert_close(H @ s + 0.5 * M * r * s, -g, atol=1e-9, rtol=0)
    assert float(torch.linalg.eigvalsh(H).min()) + M * r / 2 >= -1e-9
    _, val = brute_force(g, H, M)
    assert float(cubic_model(g, H @ s, s, M)) <= val + 1e-10


def test_hard_case_gradient_orthogonal_to_lowest_eigenvector():
    g, H, Q = random_case(5, 7, lam_min=-1.0)
    g = g - (Q[:, 0] @ g) * Q[:, 0]  # no component along the lowest eigenvector
    M = 1.0
    s = cubic_step_exact(g, H, M)
    r = float(s.norm())
    assert r == pytest.approx(2.0 / M * 1.0, rel=1e-9)  # r = r_low = −2 λ_min / M
    torch.testing.assert_close(H @ s + 0.5 * M * r * s, -g, atol=1e-9, rtol=0)
    assert abs(float(Q[:, 0] @ s)) > 1e-3  # it moved along the negative-curvature direction
    _, val = brute_force(g, H, M)
    assert float(cubic_model(g, H @ s, s, M)) <= val + 1e-10
    # pure saddle with zero gradient: the step leaves along the lowest eigenvector
    s0 = cubic_step_exact(torch.zeros(5, dtype=DT), H, M)
    assert float(s0.norm()) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize(("seed", "lam_min"), [(0, -1.0), (4, 0.5)])
def test_gd_solver_agrees_with_exact(seed, lam_min):
    g, H, _ = random_case(6, seed, lam_min)
    M = 2.0
    s_exact = cubic_step_exact(g, H, M)
    s_gd, products = cubic_step_gd(g, lambda v: H @ v, M, lr=1.0 / (4 * 3.0), iters=20000, tol=1e-12,
                                   perturbation=0.0)
    assert products > 1
    m_exact = float(cubic_model(g, H @ s_exact, s_exact, M))
    m_gd = float(cubic_model(g, H @ s_gd, s_gd, M))
    assert m_gd == pytest.approx(m_exact, abs=1e-9)
    torch.testing.assert_close(s_gd, s_exact, atol=1e-5, rtol=0)


def test_exact_solver_reuses_a_factorization():
    g, H, _ = random_case(4, 5)
    torch.testing.assert_close(cubic_step_exact(g, None, 3.0, eig=symmetric_eig(H)), cubic_step_exact(g, H, 3.0))


def test_separable_solver_minimizes_each_coordinate():
    a = torch.tensor([0.3, -2.0, 0.0, 0.0, 1e-4], dtype=DT)
    b = torch.tensor([20.0, 0.2, 1.0, -0.5, -0.2], dtype=DT)
    M = 10.0
    c = M / 2
    s = cubic_step_separable(a, b, M)
    grid = torch.linspace(-2, 2, 400001, dtype=DT)
    for i in range(5):
        vals = a[i] * grid + 0.5 * b[i] * grid**2 + c / 3 * grid.abs() ** 3
        value = a[i] * s[i] + 0.5 * b[i] * s[i] ** 2 + c / 3 * s[i].abs() ** 3
        assert float(value) <= float(vals.min()) + 1e-9  # a global minimizer (±|s| when a = 0, b < 0)


def test_bad_regularization_is_an_error():
    with pytest.raises(ValueError, match="M must be > 0"):
        cubic_step_exact(torch.ones(2, dtype=DT), torch.eye(2, dtype=DT), 0.0)


def test_lanczos_step_is_exact_once_the_krylov_space_is_full():
    """With k = n products the Krylov space is the whole space: the Lanczos step is the exact global minimiser,
    and the low-rank solve against the full factor agrees with the eigendecomposition solver."""
    from bilevel.components.cubic import cubic_step_exact, cubic_step_lanczos, cubic_step_lowrank, lanczos_factor

    torch.manual_seed(0)
    B = torch.randn(8, 8, dtype=torch.float64)
    H = 0.5 * (B + B.T)  # indefinite
    g = torch.randn(8, dtype=torch.float64)
    exact = cubic_step_exact(g, H, 2.0)
    s, products = cubic_step_lanczos(g, lambda v: H @ v, 2.0, dim=8)
    assert products == 8
    assert torch.allclose(s, exact, atol=1e-8)
    theta, U, _ = lanczos_factor(g, lambda v: H @ v, dim=8)
    assert torch.allclose(U.T @ U, torch.eye(8, dtype=torch.float64), atol=1e-10)
    other = torch.randn(8, dtype=torch.float64)  # a fresh gradient against the stored factor (lazy step)
    assert torch.allclose(cubic_step_lowrank(other, theta, U, 2.0), cubic_step_exact(other, H, 2.0), atol=1e-8)


def test_lowrank_step_treats_the_complement_as_flat():
    """Against a rank-1 factor, a gradient orthogonal to it sees zero curvature: s = −sqrt(2‖g‖/M) g/‖g‖."""
    from bilevel.components.cubic import cubic_step_lowrank

    U = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    g = torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64)
    s = cubic_step_lowrank(g, torch.tensor([5.0], dtype=torch.float64), U, 2.0)
    assert torch.allclose(s, -math.sqrt(2 * 5.0 / 2.0) * g / 5.0, atol=1e-9)
