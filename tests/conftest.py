"""Shared fixtures: small float64 problems with closed forms."""

import pytest
import torch

import bilevel


@pytest.fixture(scope="session")
def quad100():
    """The 100x100 quadratic of the foundation issue (p = d = 100), well conditioned."""
    return bilevel.problems.make("quadratic", dim_inner=100, dim_outer=100, n_samples_inner=1024,
                                 n_samples_outer=1024, mu_inner=0.1, seed=0)


@pytest.fixture(scope="session")
def quad_small():
    return bilevel.problems.make("quadratic", dim_inner=6, dim_outer=4, n_samples_inner=64, n_samples_outer=32,
                                 mu_inner=0.3, seed=3)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))
