"""PZOBO / PZOBO-S (Sow, Ji & Liang, NeurIPS 2022): the response Jacobian from two optimisation paths.

Per outer iteration (``specs/pzobo.md`` §3): from one start ``y⁰``, the main path runs N inner
gradient steps at ``x`` and Q perturbed paths the same N steps (same step size, same minibatches in the
same order) at ``x + μ u_q``; with ``δ_q = (y_q^N − y^N)/μ``::

    ĝ = ∇_x f(x, y^N) + (1/Q) Σ_q u_q ⟨δ_q, ∇_y f(x, y^N)⟩                     (§3 step 4)

The Q + 1 paths are independent: they advance together, one vectorized gradient call per inner step
(``Oracle.grads_y``). Cost per outer step: (Q+1)·N inner gradients + 1 outer gradient; no
second-order products.

Choices (parameters; defaults mirror benchopt, the configuration used for quadratics, P-1):
``directions`` = ``"gaussian"`` (unbiased) or ``"unit_per_tensor"`` (the authors' law; for a flat x one
unit vector u, ``E[u uᵀ] = I/d``, which scales the Jacobian term by 1/d; ``dimension_rescale``
multiplies that term, not the direction, by d, §3.2: the perturbed paths still start at ``x + μ u`` and
``E[d · u ⟨J u, a⟩] = Jᵀa``), ``warm_start`` =
True (start from the previous main-path output) or False (the problem's y0 at every step),
``perturbed_start`` = ``"same_start"`` or ``"main_path_end"`` (the aliasing quirk of the authors'
meta-learning script, §3.3), ``outer_optimizer`` = ``"sgd"`` (x ← x − outer_lr ĝ) or ``"adam"``
(the authors'), ``batch_size`` None = full batch (PZOBO), an integer = PZOBO-S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..components.zeroth_order import directions, response_jacobian_product
from .base import HypergradientMethod, State
from .registry import register


@register
@dataclass(frozen=True)
class PZOBO(HypergradientMethod):
    """Parameters: ``inner_steps`` N, ``inner_lr`` α, ``n_directions`` Q, ``mu``, ``directions``,
    ``dimension_rescale``, ``warm_start``, ``perturbed_start``, ``outer_optimizer``, ``outer_lr``,
    ``adam_betas``, ``batch_size``."""

    name = "pzobo"
    positive = (*HypergradientMethod.positive, "inner_lr", "mu")
    counts = ("inner_steps",)
    at_least_one = (*HypergradientMethod.at_least_one, "n_directions")
    choices = {**HypergradientMethod.choices, "directions": ("gaussian", "unit_per_tensor", "coordinate"),
               "perturbed_start": ("same_start", "main_path_end"), "path_layout": ("vectorized", "sequential")}

    inner_steps: int = 10
    inner_lr: float = 0.1
    n_directions: int = 10
    mu: float = 0.1
    directions: str = "gaussian"
    dimension_rescale: bool = False
    perturbed_start: str = "same_start"
    path_layout: str = "vectorized"

    def draw(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Q directions (Q, d) of the chosen law (``unit_per_tensor``: unit vectors, never rescaled)."""
        d, q = x.numel(), self.n_directions
        if self.directions == "unit_per_tensor":
            return directions("sphere", (q,), d, gen, x.dtype, x.device) / math.sqrt(d)
        return directions(self.directions, (1, q), d, gen, x.dtype, x.device)[0]

    def jacobian_scale(self, x: torch.Tensor) -> float:
        """Factor of the Jacobian term: d_T = d for unit directions with ``dimension_rescale`` (§3.2: the
        block's ``E[u uᵀ] = I/d_T`` undone), else 1 (Gaussian and coordinate laws have ``E[u uᵀ] = I``)."""
        return float(x.numel()) if self.directions == "unit_per_tensor" and self.dimension_rescale else 1.0

    def paths(self, oracle, xs: torch.Tensor, y_start: torch.Tensor, batches: list) -> torch.Tensor:
        """N gradient steps from ``y_start`` at each row of ``xs``: all rows in one vectorized call per step
        (``path_layout="vectorized"``) or one path after the other (``"sequential"``: the same numbers and
        counts; a problem that caches work per x, such as network features, then does it once per path)."""
        if self.path_layout == "sequential":
            out = []
            for x_q in xs:
                y = y_start
                for batch in batches:
                    y = y - self.inner_lr * oracle.grad_y("g", x_q, y, batch)
                out.append(y)
            return torch.stack(out)
        ys = y_start.expand(xs.shape[0], -1)
        for batch in batches:
            ys = ys - self.inner_lr * oracle.grads_y("g", xs, ys, batch)
        return ys

    def hypergradient(self, oracle, x, y_init, state: State):
        u = self.draw(x, state.rng)
        batches = [oracle.sample("g", self.batch_size, state.rng) for _ in range(self.inner_steps)]
        perturbed_x = x + self.mu * u
        if self.perturbed_start == "same_start":
            ys = self.paths(oracle, torch.cat([x[None], perturbed_x]), y_init, batches)
            y_main, y_pert = ys[0], ys[1:]
        else:  # the quirk: perturbed paths start where the main path ended
            y_main = self.paths(oracle, x[None], y_init, batches)[0]
            y_pert = self.paths(oracle, perturbed_x, y_main, batches)
        grad_x_f, grad_y_f = oracle.grad("f", x, y_main, oracle.sample("f", self.batch_size, state.rng))
        jacobian_term = response_jacobian_product(y_pert, y_main, self.mu, u, grad_y_f)  # §3 step 4
        return grad_x_f + self.jacobian_scale(x) * jacobian_term, y_main

