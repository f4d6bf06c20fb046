"""ZOBA and HF-ZOBA (Rando & Vaiter, arXiv 2601.21836): single-loop zeroth-order bilevel optimization.

Reconstruction of the authors' public implementation (``specs/zoba.md`` §3-4; the paper body is not
available). ZOBA is the zeroth-order counterpart of SOBA: with the inner iterate ``y`` (the paper's
``z``) and an auxiliary ``v`` tracking ``v*(x) = −[∇²_yy g]⁻¹ ∇_y f``, one iteration k is the
simultaneous (Jacobi) update, all estimates at the current ``(x_k, y_k, v_k)`` ("delayed information")::

    y ← y − γ_k D_y,   v ← v − γ_k (Hv + ĝ_y f),   x ← x − α_k (Cv + ĝ_x f),
    γ_k = step_size/(k+1)^e,   α_k = γ_k/outer_ratio,   e = schedule_exponent (0.5)         (§3.2)

with ``D_y`` a central difference of g, ``Hv`` / ``Cv`` the Stein estimates of ``∇²_yy g·v`` /
``∇²_xy g·v``, and forward differences of f (§3.4). Every function value of a step is independent of
the others: the g-points and the f-points of a step are each evaluated in ONE vectorized oracle call
(``evaluation="batched"``), and values are reused across estimators (``g±`` feed ``D_y`` and ``Hv``;
``g0`` feeds ``Hv`` and ``Cv``; ``f0`` both f-estimators). The points are written in place from the
directions and the scales (``PointSet.add(dy=w, dy_scale=h)``), and the call is the problem's fused
evaluation where it has one (the quadratic's; ``benchmarks/zoba_step.py --iteration`` times an iteration
against the bare evaluation of its points). Evaluations per step (§3.6):
ZOBA ``b1(1 + 4 l1) + b2(1 + 2 l2)``, HF-ZOBA ``b1(2 + 4 l1) + b2(1 + 2 l2)``.

Choices exposed as parameters (defaults = reference): ``direction_seed`` (None = a stream derived from
the run seed; the reference fixes key 0 for every run), ``shared_direction_blocks`` (True: the
f-directions are the sub-block ``[:b2, :l2]`` of the g-directions, as in the reference),
``evaluation`` (``"batched"``; ``"per-direction"`` / ``"per-point"`` are the sequential layouts the
benchmark compares against — same numbers, same counts), ``directions`` (HF-ZOBA only; ZOBA's Stein
estimators need Gaussian directions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..components.zeroth_order import (
    DIRECTION_LAWS,
    EVALUATION_MODES,
    PointSet,
    central_difference,
    directions,
    forward_difference,
    second_difference,
    stein_cross,
    stein_hessian_vector,
)
from .base import Method, State, make_generator
from .registry import register

DIRECTION_STREAM = 104_729  # offset of the direction generator's seed from the run seed


def _per_point(samples: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    """Sample index of every point of a (b, l) segment: the row's sample (None = full data)."""
    return None if samples is None else samples[:, None].expand(shape)


@dataclass(frozen=True)
class _ZerothOrderSOBA(Method):
    """Shared parameters, schedule, state and f-estimators of ZOBA and HF-ZOBA."""

    positive = ("step_size", "outer_ratio", "h")
    nonnegative = ("schedule_exponent",)
    at_least_one = ("l1", "l2", "b1", "b2")
    choices = {"evaluation": EVALUATION_MODES, "directions": DIRECTION_LAWS}

    step_size: float = 0.01
    outer_ratio: float = 2.0
    h: float = 1e-3
    l1: int = 100
    l2: int = 1
    b1: int = 25
    b2: int = 10
    schedule_exponent: float = 0.5
    direction_seed: int | None = None
    shared_direction_blocks: bool = True
    directions: str = "gaussian"
    evaluation: str = "batched"

    def init(self, oracle, x0, y0, seed) -> State:
        state = super().init(oracle, x0, y0, seed)
        state.aux["v"] = torch.zeros_like(y0)
        dseed = self.direction_seed if self.direction_seed is not None else int(seed) + DIRECTION_STREAM
        state.aux["direction_rng"] = make_generator(dseed)
        return state

    def steps(self, k: int) -> tuple[float, float]:
        """``(γ_k, α_k)`` of §3.2."""
        gamma = self.step_size / (k + 1) ** self.schedule_exponent
        return gamma, gamma / self.outer_ratio

    def draw(self, state: State, law: str | None = None):
        """Directions ``(W_g, U_g, W_f, U_f)``: (b1, l1, p), (b1, l1, d), (b2, l2, p), (b2, l2, d) (§3.4 step 1)."""
        law = law or self.directions
        x, y, gen = state.x, state.y, state.aux["direction_rng"]
        opts = dict(dtype=y.dtype, device=y.device)
        rows, cols = max(self.b1, self.b2), max(self.l1, self.l2)
        w = directions(law, (rows, cols), y.numel(), gen, **opts)
        u = directions(law, (rows, cols), x.numel(), gen, **opts)
        if self.shared_direction_blocks:
            wf, uf = w[:self.b2, :self.l2], u[:self.b2, :self.l2]
        else:
            wf = directions(law, (self.b2, self.l2), y.numel(), gen, **opts)
            uf = directions(law, (self.b2, self.l2), x.numel(), gen, **opts)
        return w[:self.b1, :self.l1], u[:self.b1, :self.l1], wf, uf

    def outer_function_estimates(self, oracle, state: State, wf, uf):
        """Forward differences ``(ĝ_y f, ĝ_x f)`` on ``b2`` samples, one call for the f-points."""
        zeta = oracle.sample("f", self.b2, state.rng)
        shape = (self.b2, self.l2)
        points = PointSet(state.x, state.y)
        points.add("f0", samples=zeta, shape=(self.b2,))
        points.add("fy", dy=wf, dy_scale=self.h, samples=_per_point(zeta, shape))
        points.add("fx", dx=uf, dx_scale=self.h, samples=_per_point(zeta, shape))
        vals = points.evaluate(oracle, "f", self.evaluation)
        return (forward_difference(vals["fy"], vals["f0"], self.h, wf),
                forward_difference(vals["fx"], vals["f0"], self.h, uf))

    def inner_estimates(self, oracle, state: State, w, u):
        """``(D_y, D_v − ĝ_y f, D_x − ĝ_x f)``: the g-part of the three directions."""
        raise NotImplementedError  # pragma: no cover - abstract

    def step(self, oracle, state: State) -> State:
        gamma, alpha = self.steps(state.k)
        w, u, wf, uf = self.draw(state)
        d_y, hv, cv = self.inner_estimates(oracle, state, w, u)
        grad_y_f, grad_x_f = self.outer_function_estimates(oracle, state, wf, uf)
        d_x = cv + grad_x_f
        state.hypergradient = (state.x, d_x)
        state.x = state.x - alpha * d_x
        state.y = state.y - gamma * d_y
        state.aux["v"] = state.aux["v"] - gamma * (hv + grad_y_f)
        state.k += 1
        return state


@register
@dataclass(frozen=True)
class ZOBA(_ZerothOrderSOBA):
    """ZOBA (§3). Parameters: ``step_size`` γ0, ``outer_ratio`` r, ``h``, ``l1``, ``l2``, ``b1``, ``b2``,
    ``schedule_exponent``, ``direction_seed``, ``shared_direction_blocks``, ``evaluation``."""

    name = "zoba"
    choices = {"evaluation": EVALUATION_MODES, "directions": ("gaussian",)}

    def inner_estimates(self, oracle, state, w, u):
        xi = oracle.sample("g", self.b1, state.rng)
        shape, h, v = (self.b1, self.l1), self.h, state.aux["v"]
        points = PointSet(state.x, state.y)
        points.add("g0", samples=xi, shape=(self.b1,))
        points.add("plus", dy=w, dy_scale=h, samples=_per_point(xi, shape))
        points.add("minus", dy=w, dy_scale=-h, samples=_per_point(xi, shape))
        points.add("joint_plus", dx=u, dx_scale=h, dy=w, dy_scale=h, samples=_per_point(xi, shape))
        points.add("joint_minus", dx=u, dx_scale=-h, dy=w, dy_scale=-h, samples=_per_point(xi, shape))
        g = points.evaluate(oracle, "g", self.evaluation)
        d_y = central_difference(g["plus"], g["minus"], h, w)
        wv = w @ v
        hv = stein_hessian_vector(second_difference(g["plus"], g["minus"], g["g0"], h), w, v, wv=wv)
        cv = stein_cross(second_difference(g["joint_plus"], g["joint_minus"], g["g0"], h), w, u, v, wv=wv)
        return d_y, hv, cv


@register
@dataclass(frozen=True)
class HFZOBA(_ZerothOrderSOBA):
    """HF-ZOBA (§4): ``Hv`` and ``Cv`` replaced by finite differences along v, with step ``h_bar``, of
    forward-difference gradient estimates at ``y`` and ``y + h̄ v`` (same directions, same samples)."""

    name = "hf-zoba"
    positive = (*_ZerothOrderSOBA.positive, "h_bar")

    h_bar: float = 1e-3

    def inner_estimates(self, oracle, state, w, u):
        xi = oracle.sample("g", self.b1, state.rng)
        shape, h = (self.b1, self.l1), self.h
        shift = self.h_bar * state.aux["v"]
        points = PointSet(state.x, state.y)
        points.add("base", samples=xi, shape=(self.b1,))
        points.add("base_v", dy=shift.expand(self.b1, -1), samples=xi)
        points.add("y", dy=w, dy_scale=h, samples=_per_point(xi, shape))
        points.add("x", dx=u, dx_scale=h, samples=_per_point(xi, shape))
        points.add("y_v", dy=torch.add(shift, w, alpha=h), samples=_per_point(xi, shape))
        points.add("x_v", dx=u, dx_scale=h, dy=shift.expand(*shape, -1), samples=_per_point(xi, shape))
        g = points.evaluate(oracle, "g", self.evaluation)
        grad_y = forward_difference(g["y"], g["base"], h, w)
        grad_x = forward_difference(g["x"], g["base"], h, u)
        grad_y_v = forward_difference(g["y_v"], g["base_v"], h, w)
        grad_x_v = forward_difference(g["x_v"], g["base_v"], h, u)
        return grad_y, (grad_y_v - grad_y) / self.h_bar, (grad_x_v - grad_x) / self.h_bar
