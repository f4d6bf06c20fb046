"""Online bilevel methods: SOGD (Nazari et al., NeurIPS 2025) and the online baselines OGD, OAGD, SOBOW.

An online method sees round t through the counting oracles of the last ``window`` rounds (``oracles[-1]``
is round t; OAGD re-evaluates older rounds at the current iterate) and advances ``(x, y, v)`` once per
round; ``project`` is ``Π_X``. Equations cite ``specs/sogd.md``.

- :class:`SOGD` (Algorithm 1, eqs. 7–8): STORM-type recursive directions with drift correction, the
  correction evaluating round t's function, with round t's samples, at the previous iterate::

      d^y_t = ∇_y g_t(z_t) + w_γ (d^y_{t−1} − ∇_y g_t(z_{t−1}))
      d^v_t = [∇_y f_t + ∇²_y g_t v_t](z_t) + w_λ (d^v_{t−1} − [∇_y f_t + ∇²_y g_t v'](z_{t−1}))
      d^x_t = [∇_x f_t + ∇²_xy g_t v_t](z_t) + w_η (d^x_{t−1} − [∇_x f_t + ∇²_xy g_t v'](z_{t−1}))
      y ← y − β_t d^y_t,  v ← Π_{‖v‖≤p}(v − δ_t d^v_t),  x ← Π_X(x − α_t d^x_t)   (simultaneous)

  ``momentum_convention`` (A-1): ``"one_minus_gamma"`` (w = 1 − γ, the algorithm as printed, default)
  or ``"gamma"`` (w = γ, the experiments' reading); ``correction_v`` (A-3): v' = v_{t−1} (``"previous"``,
  default, as in the proofs) or v_t (``"current"``). At t = 1 the directions are the plain estimates.
  ``schedule="constant"`` uses α, β, δ, γ, λ, η as given; ``"theory"`` is eq. (15):
  ``α_t = alpha·(1 + c)^{1/3}/(c + t)^{1/3}``, ``β_t = c_beta α_t``, ``δ_t = c_delta α_t`` and
  ``γ_{t+1} = min(1, c_gamma α_t²)`` (likewise λ, η). ``optimizer="adam"`` replaces the plain x- and
  y-steps by Adam steps on ``d^x_t``, ``d^y_t`` (β1 = 0.9, β2 = 0.999, ε = 1e-8: open choice S-4, the
  "(Adam)" variant of the experiments).
- :class:`ZOSOGD` (Algorithm 2): the same recursion with function values only (:mod:`.zo_sogd`).
- :class:`OGD`: single-level online gradient descent on y with x fixed (Zinkevich; §6).
- :class:`OAGD`: every round one GD step on y per window round, then the window-averaged hypergradient
  ``Σ_i ν^i h_{t−i}(x_t, y_t) / W`` re-evaluated at the current iterate on each stored round, with a
  ``neumann_steps``-term Neumann series (step ``neumann_lr``) for the linear system (§6, §7.2).
- :class:`SOBOW`: one GD step on y, ``cg_steps`` CG iterations warm-started from the previous v
  (``warm_start=False``: from v = 0, every round; S-7 leaves the choice open), and
  the window average of the stored estimates ``Σ_i ν^i h_{t−i}(x_{t−i}, y_{t−i}) / W`` (§6, S-7).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..components.hypergradients import implicit_hypergradient
from ..components.window import window_average
from ..oracle import Oracle
from .base import Method, State
from .registry import register


@dataclass(frozen=True)
class OnlineMethod(Method):
    """Base of the online methods: ``step(oracles, state, project)`` once per round."""

    problem_kind: ClassVar[str] = "online"

    def init(self, oracle, x0, y0, seed) -> State:  # the oracle is unused: the first round comes with step()
        state = super().init(oracle, x0, y0, seed)
        state.aux["v"] = torch.zeros_like(y0)
        return state

    def rounds_needed(self) -> int:
        """Rounds whose oracles the method needs (OAGD: its window)."""
        return 1

    def step(self, oracles: list[Oracle], state: State, project=lambda x: x) -> State:  # pragma: no cover
        raise NotImplementedError


def ball(v: torch.Tensor, radius: float | None) -> torch.Tensor:
    """``Π_{Z_p}(v) = min{1, p/‖v‖} v`` (``radius=None``: no projection)."""
    if radius is None:
        return v
    norm = float(torch.linalg.vector_norm(v))
    return v if norm <= radius else v * (radius / norm)


@register
@dataclass(frozen=True)
class SOGD(OnlineMethod):
    """Simultaneous online gradient descent (first-order oracles: gradients, HVP, JVP)."""

    name: ClassVar[str] = "sogd"
    uses_torch_func: ClassVar[bool] = False  # gradients and products by autograd only
    positive: ClassVar[tuple[str, ...]] = ("alpha", "beta", "delta", "c", "c_beta", "c_delta", "c_gamma", "c_lambda",
                                           "c_eta", "adam_eps", "radius")
    optional: ClassVar[tuple[str, ...]] = ("radius",)
    intervals: ClassVar[dict[str, str]] = {"gamma": "[0, 1]", "lam": "(0, 1]", "eta": "[0, 1]", "adam_beta1": "[0, 1)",
                                           "adam_beta2": "[0, 1)"}
    choices: ClassVar[dict[str, tuple]] = {"momentum_convention": ("one_minus_gamma", "gamma"),
                                           "correction_v": ("previous", "current"),
                                           "schedule": ("constant", "theory"), "optimizer": ("sgd", "adam")}

    alpha: float = 0.1
    beta: float = 0.1
    delta: float = 0.1
    gamma: float = 0.9
    lam: float = 0.9
    eta: float = 0.9
    momentum_convention: str = "one_minus_gamma"
    correction_v: str = "previous"
    schedule: str = "constant"
    c: float = 2.0
    c_beta: float = 1.0
    c_delta: float = 1.0
    c_gamma: float = 1.0
    c_lambda: float = 1.0
    c_eta: float = 1.0
    radius: float | None = None
    optimizer: str = "sgd"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8

    def steps(self, t: int) -> dict[str, float]:
        """Step sizes and momentum parameters of round t (the momentum of round t uses α_{t−1}, eq. 15)."""
        if self.schedule == "constant":
            return {"alpha": self.alpha, "beta": self.beta, "delta": self.delta, "gamma": self.gamma,
                    "lam": self.lam, "eta": self.eta}
        alpha = self.alpha * ((1 + self.c) / (self.c + t)) ** (1 / 3)
        prev = self.alpha * ((1 + self.c) / (self.c + max(t - 1, 1))) ** (1 / 3)
        return {"alpha": alpha, "beta": self.c_beta * alpha, "delta": self.c_delta * alpha,
                "gamma": min(1.0, self.c_gamma * prev**2), "lam": min(1.0, self.c_lambda * prev**2),
                "eta": min(1.0, self.c_eta * prev**2)}

    def weight(self, momentum: float) -> float:
        return 1.0 - momentum if self.momentum_convention == "one_minus_gamma" else momentum

    def draws(self, oracle: Oracle, state: State, x: torch.Tensor, y: torch.Tensor):
        """The round's random draws shared by the estimate and its correction (none for first-order SOGD)."""
        return None

    def estimates(self, oracle: Oracle, x, y, v, draws=None):
        """``(∇_y g, ∇_y f + ∇²_y g v, ∇_x f + ∇²_xy g v)`` at ``(x, y)`` (2 gradients, 1 product through the
        retained graph of ∇_y g: ``(∇²_xy g v, ∇²_yy g v)`` in one backward pass)."""
        gy, pullback = oracle.grad_y_with_pullback("g", x, y)
        fx, fy = oracle.grad("f", x, y)
        hxy_v, hyy_v = pullback(v)
        return gy, fy + hyy_v, fx + hxy_v

    def _move(self, state: State, name: str, point: torch.Tensor, direction: torch.Tensor, lr: float) -> torch.Tensor:
        """``point − lr · direction`` (``optimizer="sgd"``) or an Adam step on ``direction`` (S-4)."""
        if self.optimizer == "sgd":
            return point - lr * direction
        m, u, k = state.aux.get(f"adam_{name}", (torch.zeros_like(point), torch.zeros_like(point), 0))
        m = self.adam_beta1 * m + (1 - self.adam_beta1) * direction
        u = self.adam_beta2 * u + (1 - self.adam_beta2) * direction * direction
        k += 1
        state.aux[f"adam_{name}"] = (m, u, k)
        m_hat, u_hat = m / (1 - self.adam_beta1**k), u / (1 - self.adam_beta2**k)
        return point - lr * m_hat / (u_hat.sqrt() + self.adam_eps)

    def step(self, oracles, state, project=lambda x: x):
        oracle = oracles[-1]
        t = state.k + 1
        p = self.steps(t)
        x, y, v = state.x, state.y, state.aux["v"]
        draws = self.draws(oracle, state, x, y)
        dy, dv, dx = self.estimates(oracle, x, y, v, draws)
        if "previous" in state.aux:  # STORM correction: round t's function (and draws) at the previous iterate
            xp, yp, vp = state.aux["previous"]
            cy, cv, cx = self.estimates(oracle, xp, yp, vp if self.correction_v == "previous" else v, draws)
            py, pv, px = state.aux["directions"]
            dy = dy + self.weight(p["gamma"]) * (py - cy)
            dv = dv + self.weight(p["lam"]) * (pv - cv)
            dx = dx + self.weight(p["eta"]) * (px - cx)
        state.aux["previous"] = (x, y, v)
        state.aux["directions"] = (dy, dv, dx)
        state.hypergradient = (x, dx)
        state.y = self._move(state, "y", y, dy, p["beta"])
        state.aux["v"] = ball(v - p["delta"] * dv, self.radius)
        state.x = project(self._move(state, "x", x, dx, p["alpha"]))
        state.diagnostics["alpha"] = p["alpha"]
        state.k = t
        return state


@register
@dataclass(frozen=True)
class OGD(OnlineMethod):
    """Online gradient descent on the inner variable only (x stays at its initial value)."""

    name: ClassVar[str] = "ogd"
    uses_torch_func: ClassVar[bool] = False  # gradients and products by autograd only
    positive: ClassVar[tuple[str, ...]] = ("beta",)

    beta: float = 0.1

    def step(self, oracles, state, project=lambda x: x):
        state.y = state.y - self.beta * oracles[-1].grad_y("g", state.x, state.y)
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class OAGD(OnlineMethod):
    """Online alternating time-averaged gradient with a Neumann-series hypergradient."""

    name: ClassVar[str] = "oagd"
    uses_torch_func: ClassVar[bool] = False  # gradients and products by autograd only
    positive: ClassVar[tuple[str, ...]] = ("alpha", "beta", "neumann_lr", "decay")
    counts: ClassVar[tuple[str, ...]] = ("neumann_steps", "window_size")

    alpha: float = 0.1
    beta: float = 0.1
    window_size: int = 5
    decay: float = 0.9
    neumann_steps: int = 5
    neumann_lr: float = 0.5

    def rounds_needed(self) -> int:
        return max(1, self.window_size)

    def step(self, oracles, state, project=lambda x: x):
        recent = list(oracles)[-self.rounds_needed():]
        y = state.y
        for oracle in recent:  # one inner step per window round, oldest first
            y = y - self.beta * oracle.grad_y("g", state.x, y)
        estimates = [implicit_hypergradient(o, state.x, y, "neumann", self.neumann_steps, solver_lr=self.neumann_lr)[0]
                     for o in reversed(recent)]  # newest first
        h = window_average(estimates, self.decay)
        state.hypergradient = (state.x, estimates[0])
        state.x, state.y = project(state.x - self.alpha * h), y
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class SOBOW(OnlineMethod):
    """Single-loop online bilevel optimizer with window averaging and a warm-started CG system solve."""

    name: ClassVar[str] = "sobow"
    uses_torch_func: ClassVar[bool] = False  # gradients and products by autograd only
    positive: ClassVar[tuple[str, ...]] = ("alpha", "beta", "decay")
    counts: ClassVar[tuple[str, ...]] = ("cg_steps", "window_size")

    alpha: float = 0.1
    beta: float = 0.1
    window_size: int = 5
    decay: float = 0.9
    cg_steps: int = 5
    warm_start: bool = True

    def step(self, oracles, state, project=lambda x: x):
        oracle = oracles[-1]
        y = state.y - self.beta * oracle.grad_y("g", state.x, state.y)
        v0 = state.aux.get("v_cg") if self.warm_start else None
        h, v, _ = implicit_hypergradient(oracle, state.x, y, "cg", self.cg_steps, v0=v0)
        state.aux["v_cg"] = v
        past = state.aux.setdefault("past", deque(maxlen=max(1, self.window_size)))
        past.appendleft(h)
        avg = window_average(list(past), self.decay)
        state.hypergradient = (state.x, h)
        state.x, state.y = project(state.x - self.alpha * avg), y
        state.k += 1
        return state
