"""Single-level zeroth-order online baselines of the SOGD paper's attack experiment (``specs/sogd.md`` §6).

Each round they update only the inner variable y, with x held at its initial value ("for fairness λ is
replaced by a fixed vector"), from the two-point estimate (19a) of the round's inner loss::

    ĝ = (1/b) Σ_i (g_t(x, y + h r_i; ζ_i) − g_t(x, y − h r_i; ζ_i)) / (2h) · r_i

(``direction_law="sphere"``: √d-sphere directions with h = ρ/√d, the paper's d/(2ρ) unit-sphere form;
``"gaussian"``: Gaussian directions with h = ρ). All 2b points are evaluated in one vectorized call.

- ``zo-gd`` (Nesterov & Spokoiny): ``y ← y − lr ĝ``;
- ``zo-adam`` (ZO-AdaMM, Chen et al. 2019): ``m ← β1 m + (1−β1) ĝ``, ``u ← β2 u + (1−β2) ĝ²``,
  ``û ← max(û, u)``, ``y ← y − lr m/(√û + ε)``;
- ``zo-signsgd`` (after Bernstein et al. 2018): ``y ← y − lr sign(ĝ)``;
- ``zo-conservsgd`` (ZO-Bench's "zo_conserv"): among ``y``, ``y − lr ĝ`` and ``y + lr ĝ`` keep the one with
  the lowest round loss (3 more values), so a step never increases the measured loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..components import zeroth_order as zo
from .online import OnlineMethod
from .registry import register


@dataclass(frozen=True)
class ZeroOrderSingleLevel(OnlineMethod):
    """Base: the two-point gradient of the round's inner loss in y; subclasses set the update."""

    positive: ClassVar[tuple[str, ...]] = ("lr", "rho")
    at_least_one: ClassVar[tuple[str, ...]] = ("n_directions",)
    choices: ClassVar[dict[str, tuple]] = {"direction_law": ("sphere", "gaussian")}

    lr: float = 0.01
    n_directions: int = 10
    rho: float = 0.005
    direction_law: str = "sphere"

    def gradient_estimate(self, oracle, state) -> torch.Tensor:
        x, y = state.x, state.y
        dim = y.numel()
        h = self.rho / math.sqrt(dim) if self.direction_law == "sphere" else self.rho
        r = zo.directions(self.direction_law, (self.n_directions, 1), dim, state.rng, y.dtype, y.device)
        xi = oracle.sample("g", self.n_directions, state.rng)
        points = zo.PointSet(x, y)
        points.add("plus", dy=h * r, samples=None if xi is None else xi[:, None])
        points.add("minus", dy=-h * r, samples=None if xi is None else xi[:, None])
        values = points.evaluate(oracle, "g")
        return zo.central_difference(values["plus"], values["minus"], h, r)

    def update(self, oracle, state, grad: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, oracles, state, project=lambda x: x):
        oracle = oracles[-1]
        grad = self.gradient_estimate(oracle, state)
        state.y = self.update(oracle, state, grad)
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class ZOGD(ZeroOrderSingleLevel):
    name: ClassVar[str] = "zo-gd"

    def update(self, oracle, state, grad):
        return state.y - self.lr * grad


@register
@dataclass(frozen=True)
class ZOAdam(ZeroOrderSingleLevel):
    name: ClassVar[str] = "zo-adam"
    positive: ClassVar[tuple[str, ...]] = ZeroOrderSingleLevel.positive + ("eps",)
    intervals: ClassVar[dict[str, str]] = {"beta1": "[0, 1)", "beta2": "[0, 1)"}

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def update(self, oracle, state, grad):
        zeros = torch.zeros_like(grad)
        m, u, u_max = state.aux.get("adamm", (zeros, zeros, zeros))
        m = self.beta1 * m + (1 - self.beta1) * grad
        u = self.beta2 * u + (1 - self.beta2) * grad * grad
        u_max = torch.maximum(u_max, u)
        state.aux["adamm"] = (m, u, u_max)
        return state.y - self.lr * m / (u_max.sqrt() + self.eps)


@register
@dataclass(frozen=True)
class ZOSignSGD(ZeroOrderSingleLevel):
    name: ClassVar[str] = "zo-signsgd"

    def update(self, oracle, state, grad):
        return state.y - self.lr * torch.sign(grad)


@register
@dataclass(frozen=True)
class ZOConservSGD(ZeroOrderSingleLevel):
    name: ClassVar[str] = "zo-conservsgd"

    def update(self, oracle, state, grad):
        candidates = torch.stack([state.y, state.y - self.lr * grad, state.y + self.lr * grad])
        values = oracle.values("g", state.x.expand(3, -1), candidates)
        return candidates[int(torch.argmin(values))]
