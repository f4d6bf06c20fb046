"""SOBA (Dagréou, Ablin, Vaiter & Moreau, NeurIPS 2022): the first-order single-loop method ZOBA mimics.

Per iteration, with one inner minibatch ξ (for every derivative of g) and one outer minibatch ζ
(``specs/zoba.md`` §5.5), simultaneously::

    y ← y − γ_k ∇_y g(x, y; ξ)
    v ← v − γ_k (∇²_yy g(x, y; ξ) v + ∇_y f(x, y; ζ))
    x ← x − α_k (∇²_xy g(x, y; ξ) v + ∇_x f(x, y; ζ))

``γ_k = step_size/(k+1)^e``, ``α_k = γ_k/outer_ratio`` (benchopt defaults: 0.1, 1, e = 0.5, batch 64).
Both second-order products come from one linearization of ∇_y g (one backward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Method, State
from .registry import register


@register
@dataclass(frozen=True)
class SOBA(Method):
    """Parameters: ``step_size``, ``outer_ratio``, ``schedule_exponent``, ``batch_size`` (None = full batch)."""

    name = "soba"
    uses_torch_func = False  # gradients and products by autograd only
    positive = ("step_size", "outer_ratio")
    nonnegative = ("schedule_exponent",)
    at_least_one = ("batch_size",)
    optional = ("batch_size",)

    step_size: float = 0.1
    outer_ratio: float = 1.0
    schedule_exponent: float = 0.5
    batch_size: int | None = 64

    def init(self, oracle, x0, y0, seed) -> State:
        state = super().init(oracle, x0, y0, seed)
        state.aux["v"] = torch.zeros_like(y0)
        return state

    def step(self, oracle, state: State) -> State:
        gamma = self.step_size / (state.k + 1) ** self.schedule_exponent
        alpha = gamma / self.outer_ratio
        xi = oracle.sample("g", self.batch_size, state.rng)
        zeta = oracle.sample("f", self.batch_size, state.rng)
        v = state.aux["v"]
        grad_y_g, pullback = oracle.grad_y_with_pullback("g", state.x, state.y, xi)
        cross, hv = pullback(v, "xy")
        grad_x_f, grad_y_f = oracle.grad("f", state.x, state.y, zeta)
        d_x = cross + grad_x_f
        state.hypergradient = (state.x, d_x)
        state.x = state.x - alpha * d_x
        state.y = state.y - gamma * grad_y_g
        state.aux["v"] = v - gamma * (hv + grad_y_f)
        state.k += 1
        return state
