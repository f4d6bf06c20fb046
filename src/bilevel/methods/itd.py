"""ITD: iterative differentiation (reverse mode through T unrolled inner gradient steps).

Maclaurin et al. 2015, Franceschi et al. 2017; baseline of all three papers (``specs/fsba.md`` §9.2:
T = 10 inner GD steps with the graph kept, backpropagation of the upper loss, warm start).
``reverse = "joint"`` forms each backward step's (x, y) blocks by one pullback through that step's
graph; ``"split"`` (:func:`~bilevel.components.hypergradients.unrolled_hypergradient_split`) forms all
x-blocks in one reverse pass over x, as reverse-mode frameworks do when the inner loop adapts a head on
fixed features (meta-learning); the estimate is the same.
The estimate is the exact gradient of ``x ↦ f(x, y_T(x))`` (see
:func:`~bilevel.components.hypergradients.unrolled_hypergradient`); it converges to ∇Ψ as T grows
when the inner map is a contraction (``inner_lr < 2/L_g``). Oracle cost per outer step:
T g-gradients + T second-order products + 1 f-gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..components.hypergradients import unrolled_hypergradient, unrolled_hypergradient_split
from .base import HypergradientMethod
from .registry import register


@register
@dataclass(frozen=True)
class ITD(HypergradientMethod):
    """Parameters: ``inner_steps`` T, ``inner_lr`` (GD step on g), ``reverse``, ``outer_lr``,
    ``outer_optimizer``, ``warm_start``, ``batch_size``."""

    name = "itd"
    positive = (*HypergradientMethod.positive, "inner_lr")
    counts = ("inner_steps",)
    choices = {**HypergradientMethod.choices, "reverse": ("joint", "split")}

    inner_steps: int = 10
    inner_lr: float = 0.1
    reverse: str = "joint"

    @property
    def uses_torch_func(self) -> bool:  # the joint recursion uses autograd only
        return self.reverse == "split"

    def hypergradient(self, oracle, x, y_init, state):
        unrolled = unrolled_hypergradient_split if self.reverse == "split" else unrolled_hypergradient
        return unrolled(
            oracle, x, y_init, self.inner_lr, self.inner_steps,
            sampler=self.sampler(oracle, state, "g"),
            batch_f=oracle.sample("f", self.batch_size, state.rng),
        )
