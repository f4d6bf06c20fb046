"""ZDSBA: the two-loop fully zeroth-order bilevel method of Aghasi & Ghadimi, "Fully Zeroth-Order Bilevel
Programming via Gaussian Smoothing" (arXiv 2404.00158; JOTA 205(2), 2025).

OUR RECONSTRUCTION, labelled as such in every output: the paper's algorithm boxes are not available to us
(``specs/zoba.md`` §5.2). What is known, with its source:

- [paper: abstract] Gaussian smoothing with Stein's identity gives first- and second-order partial
  derivatives of a function of TWO independent blocks of variables from function values only, and these
  estimates drive a stochastic approximation method for the bilevel problem;
- [secondary: a public summary of the paper] two loops: an inner zeroth-order SGD on the lower problem, an
  outer zeroth-order step on the upper problem, and a zeroth-order Hessian-inverse routine, SZHIA;
- [inferred] the frame is Ghadimi & Wang's BSA (arXiv 1802.02246; Ghadimi co-authors both): a warm-started
  inner SGD of t_k steps, then a hypergradient whose inverse Hessian is a randomly truncated Neumann series.

With Gaussian directions (``E[uuᵀ] = I``), smoothing radii ``mu_x`` (μ₁, the x block) and ``mu_y`` (μ₂, the y
block), one outer iteration k is::

    1. inner loop, t = 0..t_k−1, one fresh sample ξ_t and ``inner_directions`` m directions w_j per step:
         y ← y − β_t (1/m) Σ_j (g(x, y + μ₂w_j; ξ_t) − g(x, y; ξ_t))/μ₂ · w_j,   β_t = inner_lr/(t+1)^e
    2. at (x, y): ∇̂_x f, ∇̂_y f from ``outer_samples`` s samples, one direction pair (u, w) each (forward
       differences; ``joint_f=True``: ONE value f(x + μ₁u, y + μ₂w) per sample serves both blocks, the
       two-block smoothing of the abstract [inferred]; False: one perturbation per block [our choice]);
    3. SZHIA, the inverse Hessian applied to ∇̂_y f, with factors Ĥ_i (the Stein Hessian along
       ``hessian_samples`` directions of one fresh sample each):
         random (BSA, default [inferred]):  P ~ U{0, …, N−1},  z = N η Π_{i=1}^{P} (I − η Ĥ_i) ∇̂_y f
         fixed  ([our choice]):             z = η Σ_{i=0}^{N−1} Π_{j=1}^{i} (I − η Ĥ_j) ∇̂_y f   (P = N − 1)
       both estimate the N-term Neumann series η Σ_{i<N} (I − η∇²_yy g)^i ∇_y f ≈ [∇²_yy g]⁻¹ ∇_y f;
    4. ĥ = ∇̂_x f − Ĉ z,  Ĉ z the Stein cross product ∇²_xy g·z from s joint perturbations (x ± μ₁u, y ± μ₂w);
    5. x ← x − α_k ĥ,   α_k = outer_lr/(k+1)^e_out (BSA's constant step: e_out = 0, the default).

Second-order estimates (``hessian_scheme``): ``"central"`` (default [our choice]: the second difference
``(g(+) + g(−) − 2g(0))/(2μ²)`` that cancels the first-order term, the form of the ZOBA authors' code) or
``"forward"`` (``(g(+) − g(0))/μ²``: the one-sided form of Stein's identity, unbiased for the smoothed
function but with a variance ~ ‖∇g‖²/μ² [inferred as the paper's literal estimator]); the cross term is
``(g(x + μ₁u, y + μ₂w) + g(x − μ₁u, y − μ₂w) − 2g(x, y))/(2μ₁μ₂)`` (central) or
``(g(x + μ₁u, y + μ₂w) − g(x, y))/(μ₁μ₂)`` (forward), times ``(wᵀz) u``. ``warm_start`` (default True, as BSA):
each inner loop starts from the previous y; False: from the problem's y0. ``evaluation``: the layout below.

Layout (``evaluation="batched"``): the inner loop is sequential (each step needs the previous iterate): one
small oracle call per step; then every g-value of steps 3–4 (the p factors' points and the cross points) in
ONE vectorized call and every f-value of step 2 in ONE call — the Neumann product needs the factors'
values only, not the vector they act on, so the whole product is formed after the evaluations
(``"per-direction"`` / ``"per-point"``: the sequential layouts, same numbers, same counts).

Function values per outer iteration (counted by the Oracle, values only), with P = p_k (random; recorded as
the diagnostic ``neumann_factors``) or N − 1 (fixed), c = 2 (central) or 1 (forward):
g ``t_k (1 + m) + P (1 + c·hessian_samples) + s (1 + c)``, f ``s (1 + (1 if joint_f else 2))``.

Defaults [our choice; ZDSBA's own values are not available to us]: the inner loop, radius, sample count and
outer step of the ZOBA authors' ZMDSBA, the same group's mini-batch method (t_k = 20, β₀ = 5e-4, e = 0.5,
μ = 1e-3, s = 200, α = 1e-5; ``specs/zoba.md`` §5.3); for SZHIA, N = 10 terms of step η = 0.05 with 20
directions per factor: a product that stays stable up to p = 20 on the benchmark quadratic, at the price of
a truncated series (Nη = 0.5). BSA's η = 1/L_g bounds the SAMPLE Hessians: a one-sample Stein factor
spreads ~p times the mean Hessian, so η must shrink with p (η = 1e-3 at p = 100, measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..components.zeroth_order import (
    EVALUATION_MODES,
    PointSet,
    directions,
    forward_difference,
    second_difference,
    stein_cross,
    stein_hessian_vector,
)
from .base import Method, State, make_generator
from .registry import register
from .zoba import DIRECTION_STREAM


@register
@dataclass(frozen=True)
class ZDSBA(Method):
    """Parameters: ``inner_steps`` t_k, ``inner_lr`` β₀, ``inner_schedule_exponent`` e, ``inner_directions`` m,
    ``mu_x`` μ₁, ``mu_y`` μ₂, ``outer_samples`` s, ``joint_f``, ``neumann_terms`` N, ``neumann_lr`` η, ``truncation``,
    ``hessian_samples``, ``hessian_scheme``, ``outer_lr`` α, ``outer_schedule_exponent`` e_out, ``warm_start``,
    ``evaluation``."""

    name = "zdsba"
    positive = ("inner_lr", "mu_x", "mu_y", "neumann_lr", "outer_lr")
    nonnegative = ("inner_schedule_exponent", "outer_schedule_exponent")
    counts = ("inner_steps",)
    at_least_one = ("inner_directions", "outer_samples", "neumann_terms", "hessian_samples")
    choices = {"truncation": ("random", "fixed"), "hessian_scheme": ("central", "forward"),
               "evaluation": EVALUATION_MODES}

    inner_steps: int = 20
    inner_lr: float = 5e-4
    inner_schedule_exponent: float = 0.5
    inner_directions: int = 1
    mu_x: float = 1e-3
    mu_y: float = 1e-3
    outer_samples: int = 200
    joint_f: bool = True
    neumann_terms: int = 10
    neumann_lr: float = 0.05
    truncation: str = "random"
    hessian_samples: int = 20
    hessian_scheme: str = "central"
    outer_lr: float = 1e-5
    outer_schedule_exponent: float = 0.0
    warm_start: bool = True
    evaluation: str = "batched"

    def init(self, oracle, x0, y0, seed) -> State:
        state = super().init(oracle, x0, y0, seed)
        state.aux["y0"] = y0.clone()
        state.aux["direction_rng"] = make_generator(int(seed) + DIRECTION_STREAM)
        return state

    def _dirs(self, state: State, shape: tuple[int, ...], dim: int) -> torch.Tensor:
        return directions("gaussian", shape, dim, state.aux["direction_rng"], state.y.dtype, state.y.device)

    def inner_loop(self, oracle, state: State) -> torch.Tensor:
        """Step 1: ``t_k`` zeroth-order SGD steps on ``g(x, ·)``, one sample and ``m`` directions per step."""
        x = state.x
        y = state.y if self.warm_start else state.aux["y0"]
        m = self.inner_directions
        for t in range(self.inner_steps):
            w = self._dirs(state, (1, m), y.numel())
            xi = oracle.sample("g", 1, state.rng)
            points = PointSet(x, y)
            points.add("base", samples=xi, shape=(1,))
            points.add("plus", dy=self.mu_y * w, samples=None if xi is None else xi[:, None].expand(1, m))
            g = points.evaluate(oracle, "g", self.evaluation)
            step = self.inner_lr / (t + 1) ** self.inner_schedule_exponent
            y = y - step * forward_difference(g["plus"], g["base"], self.mu_y, w)
        return y

    def factors(self, state: State) -> int:
        """P, the number of Hessian factors of this iteration's SZHIA product (step 3)."""
        if self.truncation == "fixed":
            return self.neumann_terms - 1
        return int(torch.randint(self.neumann_terms, (1,), generator=state.aux["direction_rng"]))

    def _second(self, plus, minus, base, h: float) -> torch.Tensor:
        """Second-order coefficient per (sample, direction): central or one-sided (``hessian_scheme``)."""
        if self.hessian_scheme == "central":
            return second_difference(plus, minus, base, h)
        return (plus - base[:, None]) / (h * h)

    def estimates(self, oracle, state: State) -> dict:
        """Steps 2–4 at the current ``(x, y)``: ``grad_x_f``, ``grad_y_f``, ``z`` (SZHIA), ``cross_z`` = Ĉz and
        the number of factors ``factors``; one vectorized call per level."""
        x, y, s = state.x, state.y, self.outer_samples
        p, d, m_h = y.numel(), x.numel(), self.hessian_samples
        central = self.hessian_scheme == "central"
        n_factors = self.factors(state)
        u_f, w_f = self._dirs(state, (s,), d), self._dirs(state, (s,), p)
        u_c, w_c = self._dirs(state, (s,), d), self._dirs(state, (s,), p)
        w_h = self._dirs(state, (n_factors, m_h), p)
        zeta = oracle.sample("f", s, state.rng)
        xi_c = oracle.sample("g", s, state.rng)
        xi_h = oracle.sample("g", n_factors, state.rng) if n_factors else None

        g_points = PointSet(x, y)
        g_points.add("c0", samples=xi_c, shape=(s,))
        g_points.add("c_plus", dx=self.mu_x * u_c, dy=self.mu_y * w_c, samples=xi_c)
        if central:
            g_points.add("c_minus", dx=-self.mu_x * u_c, dy=-self.mu_y * w_c, samples=xi_c)
        if n_factors:
            per_direction = None if xi_h is None else xi_h[:, None].expand(n_factors, m_h)
            g_points.add("h0", samples=xi_h, shape=(n_factors,))
            g_points.add("h_plus", dy=self.mu_y * w_h, samples=per_direction)
            if central:
                g_points.add("h_minus", dy=-self.mu_y * w_h, samples=per_direction)
        g = g_points.evaluate(oracle, "g", self.evaluation)

        f_points = PointSet(x, y)
        f_points.add("f0", samples=zeta, shape=(s,))
        if self.joint_f:
            f_points.add("fxy", dx=self.mu_x * u_f, dy=self.mu_y * w_f, samples=zeta)
        else:
            f_points.add("fx", dx=self.mu_x * u_f, samples=zeta)
            f_points.add("fy", dy=self.mu_y * w_f, samples=zeta)
        f = f_points.evaluate(oracle, "f", self.evaluation)
        fx, fy = (f["fxy"], f["fxy"]) if self.joint_f else (f["fx"], f["fy"])
        grad_x_f = forward_difference(fx[:, None], f["f0"], self.mu_x, u_f[:, None])
        grad_y_f = forward_difference(fy[:, None], f["f0"], self.mu_y, w_f[:, None])

        curvature = (self._second(g["h_plus"], g.get("h_minus"), g["h0"], self.mu_y) if n_factors
                     else torch.zeros(0, m_h, dtype=y.dtype, device=y.device))
        z = self.inverse_hessian_product(curvature, w_h, grad_y_f)
        joint = self._second(g["c_plus"][:, None], g["c_minus"][:, None] if central else None, g["c0"],
                             math.sqrt(self.mu_x * self.mu_y))
        cross_z = stein_cross(joint, w_c[:, None], u_c[:, None], z)
        return {"grad_x_f": grad_x_f, "grad_y_f": grad_y_f, "z": z, "cross_z": cross_z, "factors": n_factors}

    def inverse_hessian_product(self, curvature: torch.Tensor, w_h: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """SZHIA (step 3): the truncated Neumann series applied to ``b`` from the P factors' coefficients
        ``curvature`` (P, m) along ``w_h`` (P, m, p); factor i acts as ``Ĥ_i z = stein_hessian_vector``."""
        eta, z = self.neumann_lr, b
        total = b.clone()
        for i in range(curvature.shape[0]):
            z = z - eta * stein_hessian_vector(curvature[i:i + 1], w_h[i:i + 1], z)
            total = total + z
        if self.truncation == "random":
            return self.neumann_terms * eta * z
        return eta * total

    def step(self, oracle, state: State) -> State:
        state.y = self.inner_loop(oracle, state)
        est = self.estimates(oracle, state)
        d_x = est["grad_x_f"] - est["cross_z"]
        state.hypergradient = (state.x, d_x)
        state.diagnostics["neumann_factors"] = float(est["factors"])
        state.x = state.x - self.outer_lr / (state.k + 1) ** self.outer_schedule_exponent * d_x
        state.k += 1
        return state
