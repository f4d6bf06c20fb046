"""Online bilevel problems: a stream of time-varying problems ``(f_t, g_t)``, one per round.

SOGD paper (Nazari et al., NeurIPS 2025), ``specs/sogd.md`` §1–2. A :class:`BilevelStream` yields, for
round ``t = 1, 2, …``, an ordinary :class:`~bilevel.problems.base.BilevelProblem` whose functions carry
that round's fresh samples, so every method reaches round t through an ordinary counting oracle.
Where the stream knows ``∇F_t`` (the hypergradient of ``F_t(x) = f_t(x, y*_t(x))``) the runner computes
the bilevel local regret exactly (eq. 2).

Built-in: :func:`make_online_quadratic`, the bilevel example of the paper's Appendix B (submission
Ex. B.11) generalised to ``d`` dimensions (``d = 1`` is the paper's example)::

    f_t(x, y) = ½‖x + 2a¹_t‖² + ½‖y − a²_t‖²,   g_t(x, y) = ½‖y‖² − ⟨x − a²_t, y⟩,
    a¹_t = c₁/t^p₁,  a²_t = c₂/t^p₂   (paper: c₁ = c₂ = 1, p₁ = 1, p₂ = ½, X = [−1, 1]^d)

so ``y*_t(x) = x − a²_t``, ``∇F_t(x) = 2x + 2a¹_t − 2a²_t`` and ``x*_t = Π_X(a²_t − a¹_t)``.

Stochastic oracles (open choice S-6, our model): round t draws ``ξ_t, ζ_t ~ N(0, σ² I)`` and uses
``f_t(x, y) + ⟨ξ_t, (x, y)⟩`` and ``g_t(x, y) + ⟨ζ_t, (x, y)⟩``: every gradient of the round carries the
same additive Gaussian noise (standard deviation σ per coordinate), second-order products are exact,
and the round's noise is shared by all evaluations of that round (the "same fresh samples" that the
STORM correction of SOGD re-uses at the previous iterate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .base import BilevelProblem
from .registry import register


@dataclass
class BilevelStream:
    """A stream of bilevel problems. ``round(t, generator)`` returns round t's problem (fresh samples
    drawn from ``generator``); ``hypergradient(t, x)`` is the exact ``∇F_t(x)`` when known (else None);
    ``x_box`` the feasible box ``X = [lo, hi]^d1`` (None: unconstrained); ``metrics`` maps a metric name
    to ``fn(t, x, y) -> float``, evaluated (untimed, uncounted) at the rounds the runner records."""

    make_round: Callable[[int, torch.Generator], BilevelProblem]
    x0: torch.Tensor
    y0: torch.Tensor
    hypergradient_fn: Callable[[int, torch.Tensor], torch.Tensor] | None = None
    x_box: tuple[float, float] | None = None
    name: str = "stream"
    info: dict = field(default_factory=dict)
    metrics: dict[str, Callable[[int, torch.Tensor, torch.Tensor], float]] = field(default_factory=dict)

    def round(self, t: int, generator: torch.Generator) -> BilevelProblem:
        if t < 1:
            raise ValueError(f"rounds start at t = 1, got {t}")
        return self.make_round(int(t), generator)

    def hypergradient(self, t: int, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.hypergradient_fn is None else self.hypergradient_fn(int(t), x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``Π_X(x)``."""
        return x if self.x_box is None else x.clamp(*self.x_box)


@register("online_quadratic", limits={"dim": "at_least_one", "sigma": "nonnegative", "c1": "number", "p1": "nonnegative",
                                     "c2": "number", "p2": "nonnegative", "box": "positive or None",
                                     "x0_value": "number", "seed": "counts"})
def make_online_quadratic(dim: int = 1, sigma: float = 0.0, c1: float = 1.0, p1: float = 1.0, c2: float = 1.0,
                          p2: float = 0.5, box: float | None = 1.0, x0_value: float = 1.0, seed: int = 0,
                          dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> BilevelStream:
    """The drifting quadratic stream above; ``box`` is the half-width of X (None: X = R^d)."""
    del seed  # the stream is deterministic; each run's generator draws the oracle noise

    def drifts(t: int) -> tuple[float, float]:
        return c1 / t**p1, c2 / t**p2

    def make_round(t: int, generator: torch.Generator) -> BilevelProblem:
        a1, a2 = drifts(t)
        noise = [sigma * torch.randn(2 * dim, generator=generator, dtype=dtype).to(device) for _ in range(2)]

        def f(x, y):
            return 0.5 * torch.sum((x + 2 * a1) ** 2) + 0.5 * torch.sum((y - a2) ** 2) + noise[0] @ torch.cat([x, y])

        def g(x, y):
            return 0.5 * torch.sum(y * y) - torch.sum((x - a2) * y) + noise[1] @ torch.cat([x, y])

        return BilevelProblem(f=f, g=g, x0=x0, y0=y0, name=f"online_quadratic[t={t}]", info={"t": t})

    def hypergradient(t: int, x: torch.Tensor) -> torch.Tensor:
        a1, a2 = drifts(t)
        return 2 * x + 2 * a1 - 2 * a2

    x0 = torch.full((dim,), float(x0_value), dtype=dtype, device=device)
    y0 = torch.zeros(dim, dtype=dtype, device=device)
    return BilevelStream(make_round=make_round, x0=x0, y0=y0, hypergradient_fn=hypergradient,
                         x_box=None if box is None else (-float(box), float(box)),
                         name=f"online_quadratic(d={dim}, sigma={sigma:g})",
                         info={"dim": dim, "sigma": float(sigma), "c1": c1, "p1": p1, "c2": c2, "p2": p2, "box": box,
                               "y_star": lambda t, x: x - drifts(t)[1],
                               "x_star": lambda t: (torch.full((dim,), drifts(t)[1] - drifts(t)[0], dtype=dtype)
                                                    .clamp(-box, box) if box is not None else None)})
