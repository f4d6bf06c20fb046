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


def accelerated_gradient_descent(grad_fn, y: torch.Tensor, lr: float, momentum: float, steps: int) -> torch.Tensor:
    """Nesterov's AGD on a strongly convex function (``specs/fsba.md`` §6, MCN's ``agd.m`` for minimization):
    ``y_new = ỹ − lr ∇(ỹ)``, ``ỹ = (1 + θ) y_new − θ y``; θ = ``momentum`` ((√κ−1)/(√κ+1) in theory)."""
    look = y
    for _ in range(steps):
        y_new = look - lr * grad_fn(look)
        look = (1 + momentum) * y_new - momentum * y
        y = y_new
    return y
