"""The stochastic quadratic: closed forms against autograd and brute force (specs/zoba.md §6)."""

import pytest
import torch
from conftest import rel

import bilevel


def test_y_star_is_the_inner_minimizer(quad_small):
    p = quad_small
    x = torch.randn(p.dim_outer, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ys = p.closed_form.y_star(x)
    grad = torch.func.grad(lambda y: p.g(x, y), argnums=0)(ys)
    assert float(grad.norm()) < 1e-10


def test_hypergradient_matches_autograd_through_exact_solution(quad_small):
    p = quad_small
    x = torch.randn(p.dim_outer, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    # Ψ(x) = f(x, y*(x)) differentiated by autograd through the linear solve
    auto = torch.func.grad(lambda xx: p.f(xx, p.closed_form.y_star(xx)))(x)
    assert rel(p.closed_form.hypergradient(x), auto) < 1e-10
    assert torch.allclose(p.closed_form.value(x), p.f(x, p.closed_form.y_star(x)))


def test_minibatch_is_the_mean_of_samples(quad_small):
    p = quad_small
    x, y = torch.ones(p.dim_outer, dtype=torch.float64), torch.ones(p.dim_inner, dtype=torch.float64)
    idx = torch.tensor([0, 5, 5, 7])
    single = torch.stack([p.g(x, y, torch.tensor([i])) for i in idx])
    assert torch.allclose(p.g(x, y, idx), single.mean())
    full = torch.stack([p.g(x, y, torch.tensor([i])) for i in range(64)]).mean()
    assert torch.allclose(p.g(x, y), full)


def test_conditioning_is_controlled():
    p = bilevel.problems.make("quadratic", dim_inner=20, dim_outer=5, n_samples_inner=20000, mu_inner=0.05,
                              L_inner_inner=1.0, seed=4)
    # E[A_i] has spectrum logspace(mu, L); the empirical mean over many samples is close to it
    assert p.info["inner_mu"] == pytest.approx(0.05, rel=0.2)
    assert p.info["inner_L"] == pytest.approx(1.0, rel=0.2)


def test_same_seed_same_instance_and_bad_input():
    a = bilevel.problems.make("quadratic", dim_inner=5, dim_outer=3, n_samples_inner=32, seed=7)
    b = bilevel.problems.make("quadratic", dim_inner=5, dim_outer=3, n_samples_inner=32, seed=7)
    x = torch.randn(3, dtype=torch.float64)
    assert torch.equal(a.closed_form.hypergradient(x), b.closed_form.hypergradient(x))
    with pytest.raises(ValueError, match="mu_inner"):
        bilevel.problems.make("quadratic", mu_inner=-1.0)
    with pytest.raises(ValueError, match="no instance"):
        bilevel.problems.make("quadratic", dim_inner=50, n_samples_inner=3, max_trials=2)
    with pytest.raises(KeyError, match="unknown problem"):
        bilevel.problems.make("nope")


def test_every_problem_module_registers_its_factory(monkeypatch):
    """Registration is by decorator in each module and discovery is automatic; ``register`` works as a call
    and as a decorator, and refuses a second factory under a taken name."""
    from bilevel.problems import registry

    assert {"quadratic", "minimax_w", "online_quadratic", "few_shot"} <= set(bilevel.problems.available())
    assert bilevel.problems.get_factory("quadratic") is bilevel.problems.make_quadratic
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @bilevel.problems.register("toy")
    def make_toy(dim: int = 2):
        return bilevel.problems.make("quadratic", dim_inner=dim, dim_outer=dim, n_samples_inner=16, seed=0)

    assert bilevel.problems.make("toy").dim_inner == 2
    with pytest.raises(ValueError, match="already registered"):
        bilevel.problems.register("toy", lambda: None)
