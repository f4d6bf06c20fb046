"""Inner (lower-level) solvers: a fixed number of steps on ``y ↦ g(x, y)``."""

from __future__ import annotations

import torch

from ..oracle import Oracle


def gradient_descent(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int,
                     sampler=None) -> torch.Tensor:
    """``steps`` iterations of ``y ← y − lr ∇_y g(x, y; ξ_t)``; ``sampler()`` draws ``ξ_t`` (None = full)."""
    for _ in range(steps):
        batch = sampler() if sampler is not None else None
        y = y - lr * oracle.grad_y("g", x, y, batch)
    return y
