"""F2BA: fully first-order bilevel approximation (Chen, Ma & Zhang 2023), ``specs/fsba.md`` §9.2.

Outer gradient descent on the penalty hyper-objective L*_λ using gradients only. Per outer step:

1. ``z ← y`` (the reference code copies y; ``z_warm_start=True`` keeps z from the last step instead);
2. ``inner_steps`` simultaneous steps: ``z ← z − lr_z λ ∇_y g(x, z)`` and
   ``y ← y − lr_y (∇_y f(x, y) + λ ∇_y g(x, ·))`` where ``·`` is y (the method) or z
   (``y_step_g_point="z"``: what the reference code does);
3. ``x ← x − outer_lr (∇_x f(x, y) + λ [∇_x g(x, y) − ∇_x g(x, z)])`` (the penalty gradient).

Defaults are the reference's data-cleaning settings: λ = 10, T = 10, lr_y = lr_z = 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..components.penalty import penalty_gradient
from .base import HypergradientMethod
from .registry import register


@register
@dataclass(frozen=True)
class F2BA(HypergradientMethod):
    """Parameters: ``lam``, ``inner_steps``, ``lr_y``, ``lr_z``, ``y_step_g_point``, ``z_warm_start``,
    ``outer_lr``, ``warm_start``, ``batch_size``."""

    name: ClassVar[str] = "f2ba"
    uses_torch_func: ClassVar[bool] = False  # gradients and products by autograd only
    positive: ClassVar[tuple[str, ...]] = (*HypergradientMethod.positive, "lam", "lr_y", "lr_z")
    counts: ClassVar[tuple[str, ...]] = ("inner_steps",)
    choices: ClassVar[dict[str, tuple]] = {**HypergradientMethod.choices, "y_step_g_point": ("y", "z")}

    lam: float = 10.0
    inner_steps: int = 10
    lr_y: float = 0.01
    lr_z: float = 0.01
    y_step_g_point: str = "y"
    z_warm_start: bool = False

    def hypergradient(self, oracle, x, y_init, state):
        y = y_init
        z = state.aux.get("z", y_init) if self.z_warm_start else y_init
        sample = self.sampler(oracle, state, "g")
        sample_f = self.sampler(oracle, state, "f")
        for _ in range(self.inner_steps):
            batch = sample() if sample else None
            gz = oracle.grad_y("g", x, z, batch)
            gy = gz if self.y_step_g_point == "z" else oracle.grad_y("g", x, y, batch)
            fy = oracle.grad_y("f", x, y, sample_f() if sample_f else None)
            z, y = z - self.lr_z * self.lam * gz, y - self.lr_y * (fy + self.lam * gy)
        state.aux["z"] = z
        return penalty_gradient(oracle, x, y, z, self.lam), y
