"""ZO-SOGD (Nazari et al., NeurIPS 2025, Algorithm 2): SOGD's recursion from function values only.

``specs/sogd.md`` §4, eqs. (19)–(22). Per round, ``b_g`` directions for the lower level and ``b_f`` for
the upper level (one direction per sample of the batch; on a finite-sum problem each direction gets its
own sample ζ_i / ξ_i), two-point estimates::

    ∇̂_y h = mean_i (h(y + ρ_r r_i) − h(y − ρ_r r_i)) / (2ρ_r') r_i'            (19a, 20a; likewise ∇̂_x with s_i)
    ∇̂²_y g v  = (∇̂_y g(x, y + ρ_v v) − ∇̂_y g(x, y − ρ_v v)) / (2ρ_v)            (21a)
    ∇̂²_xy g v = (∇̂_x g(x, y + ρ_v v) − ∇̂_x g(x, y − ρ_v v)) / (2ρ_v)            (21b)

``direction_law`` (A-4): ``"sphere"`` (default) is the paper's ``d/(2ρ)`` estimator with unit-sphere
directions (implemented as our √d-sphere directions with step ρ/√d: the same numbers), ``"gaussian"``
the Gaussian-smoothing estimator without the d factor. ``crn`` (A-5): the two gradient estimates of
(21) share their directions (default) or draw their own. The round's directions (and samples) are
drawn once and reused by the STORM correction at the previous iterate. ``y_box`` (A-6): Algorithm 2
projects x and v but not y (default None, as printed); a number b projects y onto ``[−b, b]^d`` after
every round (the single-level attack's ``min_{y ∈ Y}`` imposed in the method; the attack problems impose
their budget themselves, for every method alike). Stability (measured on the attack, see
:mod:`bilevel.experiments.sogd_online`): on a curvature μ the y-step is mean-square stable only for
``β < 2/(μ (d2/b_g + 1 − 1/b_g))``, the second moment of the d/(2ρ) sphere estimator with b_g directions,
so the number of directions b_g matters as much as β. All points of one estimate are
evaluated in one vectorized oracle call per level (:class:`~bilevel.components.zeroth_order.PointSet`).
Cost per estimate: 10·b_g values of g and 4·b_f values of f (twice from round 2 on: the correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..components import zeroth_order as zo
from .online import SOGD
from .registry import register


@register
@dataclass(frozen=True)
class ZOSOGD(SOGD):
    """Zeroth-order SOGD; parameters of SOGD plus ``b_f``, ``b_g``, ``rho_r``, ``rho_s``, ``rho_v``,
    ``direction_law``, ``crn``, ``evaluation``, ``y_box``."""

    name: ClassVar[str] = "zo-sogd"
    uses_torch_func: ClassVar[bool] = True  # vectorized function values
    positive: ClassVar[tuple[str, ...]] = SOGD.positive + ("rho_r", "rho_s", "rho_v", "y_box")
    optional: ClassVar[tuple[str, ...]] = SOGD.optional + ("y_box",)
    at_least_one: ClassVar[tuple[str, ...]] = ("b_f", "b_g")
    choices: ClassVar[dict[str, tuple]] = {**SOGD.choices, "direction_law": ("sphere", "gaussian"),
                                           "evaluation": zo.EVALUATION_MODES}

    b_f: int = 10
    b_g: int = 10
    rho_r: float = 0.005
    rho_s: float = 0.005
    rho_v: float = 0.01
    direction_law: str = "sphere"
    crn: bool = True
    evaluation: str = "batched"
    y_box: float | None = None

    def steps(self, t: int) -> dict[str, float]:
        """As SOGD, except that the theory schedule (eq. 26) sets ``γ_{t+1} = min(1, c_gamma α_t)`` (likewise
        λ, η): linear in α_t here, squared for first-order SOGD. The (d1+d2)^{-3/4} factor of α_t is left to
        ``alpha``."""
        out = super().steps(t)
        if self.schedule == "theory":
            prev = self.alpha * ((1 + self.c) / (self.c + max(t - 1, 1))) ** (1 / 3)
            out.update(gamma=min(1.0, self.c_gamma * prev), lam=min(1.0, self.c_lambda * prev),
                       eta=min(1.0, self.c_eta * prev))
        return out

    def step(self, oracles, state, project=lambda x: x):
        """SOGD's round, then (with ``y_box``) the projection of y onto ``[−y_box, y_box]^d``."""
        state = super().step(oracles, state, project)
        if self.y_box is not None:
            state.y = state.y.clamp(-self.y_box, self.y_box)
        return state

    def _step(self, rho: float, dim: int) -> float:
        return rho / math.sqrt(dim) if self.direction_law == "sphere" else rho

    def draws(self, oracle, state, x, y):
        d1, d2, gen = x.numel(), y.numel(), state.rng

        def dirs(n, dim):
            return zo.directions(self.direction_law, (n, 1), dim, gen, x.dtype, x.device)

        out = {"r_g": dirs(self.b_g, d2), "s_g": dirs(self.b_g, d1), "r_f": dirs(self.b_f, d2), "s_f": dirs(self.b_f, d1),
               "xi_g": oracle.sample("g", self.b_g, gen), "xi_f": oracle.sample("f", self.b_f, gen)}
        out["r_g2"], out["s_g2"] = (out["r_g"], out["s_g"]) if self.crn else (dirs(self.b_g, d2), dirs(self.b_g, d1))
        return out

    def estimates(self, oracle, x, y, v, draws=None):
        d1, d2 = x.numel(), y.numel()
        hr, hs, rv = self._step(self.rho_r, d2), self._step(self.rho_s, d1), self.rho_v
        r, s, r2, s2 = draws["r_g"], draws["s_g"], draws["r_g2"], draws["s_g2"]
        xi_g = None if draws["xi_g"] is None else draws["xi_g"][:, None]
        xi_f = None if draws["xi_f"] is None else draws["xi_f"][:, None]
        up = (rv * v).expand_as(r)
        g = zo.PointSet(x, y)
        g.add("gy+", dy=hr * r, samples=xi_g)
        g.add("gy-", dy=-hr * r, samples=xi_g)
        g.add("hv++", dy=up + hr * r, samples=xi_g)
        g.add("hv+-", dy=up - hr * r, samples=xi_g)
        g.add("hv-+", dy=-up + hr * r2, samples=xi_g)
        g.add("hv--", dy=-up - hr * r2, samples=xi_g)
        g.add("jv++", dx=hs * s, dy=up, samples=xi_g)
        g.add("jv+-", dx=-hs * s, dy=up, samples=xi_g)
        g.add("jv-+", dx=hs * s2, dy=-up, samples=xi_g)
        g.add("jv--", dx=-hs * s2, dy=-up, samples=xi_g)
        f = zo.PointSet(x, y)
        f.add("fy+", dy=hr * draws["r_f"], samples=xi_f)
        f.add("fy-", dy=-hr * draws["r_f"], samples=xi_f)
        f.add("fx+", dx=hs * draws["s_f"], samples=xi_f)
        f.add("fx-", dx=-hs * draws["s_f"], samples=xi_f)
        gv, fv = g.evaluate(oracle, "g", self.evaluation), f.evaluate(oracle, "f", self.evaluation)
        cd = zo.central_difference
        grad_y_g = cd(gv["gy+"], gv["gy-"], hr, r)
        hvp = (cd(gv["hv++"], gv["hv+-"], hr, r) - cd(gv["hv-+"], gv["hv--"], hr, r2)) / (2 * rv)
        jvp = (cd(gv["jv++"], gv["jv+-"], hs, s) - cd(gv["jv-+"], gv["jv--"], hs, s2)) / (2 * rv)
        grad_y_f = cd(fv["fy+"], fv["fy-"], hr, draws["r_f"])
        grad_x_f = cd(fv["fx+"], fv["fx-"], hs, draws["s_f"])
        return grad_y_g, grad_y_f + hvp, grad_x_f + jvp
