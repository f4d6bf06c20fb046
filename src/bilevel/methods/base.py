"""Method protocol: frozen hyper-parameters, ``init`` / ``step`` on a state, a registry.

A method is a frozen dataclass whose fields are its hyper-parameters (defaults from its paper).
``init(oracle, x0, y0, seed)`` returns a :class:`State`; ``step(oracle, state)`` advances it by one
outer iteration; ``outer(state)`` / ``inner(state)`` return the current iterates. All oracle access
goes through the :class:`~bilevel.oracle.Oracle` passed in, so every call is counted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..oracle import Oracle


@dataclass
class State:
    """Iterates and bookkeeping of a run.

    ``x``, ``y``: current outer / inner iterates; ``k``: outer iterations done; ``rng``: the run's
    generator (the only source of randomness); ``aux``: method-specific tensors (e.g. AID's ``v``);
    ``diagnostics``: floats logged as metrics at evaluation points (e.g. the linear-solver residual);
    ``hypergradient``: ``(x_at, estimate)`` of the last step, when the method forms one.
    """

    x: torch.Tensor
    y: torch.Tensor
    rng: torch.Generator
    k: int = 0
    aux: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    hypergradient: tuple[torch.Tensor, torch.Tensor] | None = None


def make_generator(seed: int) -> torch.Generator:
    """The run's generator: samples are drawn on the CPU so that results do not depend on the device."""
    return torch.Generator().manual_seed(int(seed))


class ParameterError(ValueError):
    """A hyper-parameter value is invalid; the message names the parameter."""


@dataclass(frozen=True)
class Method:
    """Base class of all methods; subclasses set ``name`` and override ``step``."""

    name: ClassVar[str] = "method"
    #: hyper-parameters that must be > 0 (validated on construction)
    positive: ClassVar[tuple[str, ...]] = ()
    #: hyper-parameters that must be integers >= 0
    counts: ClassVar[tuple[str, ...]] = ()
    #: hyper-parameters restricted to a set of values
    choices: ClassVar[dict[str, tuple]] = {}
    #: whether the method's oracle calls use torch.func transforms (vectorized values, full Hessians);
    #: the runners pay torch.func's one-off start-up before timing only for such methods
    uses_torch_func: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for pname in self.positive:
            value = getattr(self, pname)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ParameterError(f"{self.name}: parameter {pname} must be > 0, got {value!r}")
        for pname in self.counts:
            value = getattr(self, pname)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ParameterError(f"{self.name}: parameter {pname} must be an integer >= 0, got {value!r}")
        for pname, allowed in self.choices.items():
            if getattr(self, pname) not in allowed:
                raise ParameterError(
                    f"{self.name}: parameter {pname} must be one of {', '.join(map(str, allowed))}, "
                    f"got {getattr(self, pname)!r}"
                )

    def params(self) -> dict:
        """Hyper-parameters as a plain dict (recorded with every result)."""
        return dataclasses.asdict(self)

    def init(self, oracle: Oracle, x0: torch.Tensor, y0: torch.Tensor, seed: int) -> State:
        return State(x=x0.clone(), y=y0.clone(), rng=make_generator(seed))

    def step(self, oracle: Oracle, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def outer(self, state: State) -> torch.Tensor:
        return state.x

    def inner(self, state: State) -> torch.Tensor:
        return state.y


@dataclass(frozen=True)
class HypergradientMethod(Method):
    """Outer descent on an estimate of ∇Ψ: ``x ← x − outer_lr · ĥ(x, y)`` (``outer_optimizer="sgd"``) or
    Adam on ĥ (``"adam"``, bias-corrected, ``adam_betas``, ε = 1e-8: the outer optimiser of the
    meta-learning codes, ``specs/pzobo.md`` §5.4, ``specs/fsba.md`` §9.5).

    Subclasses implement :meth:`hypergradient`, which runs the inner solver from ``y_init`` and
    returns the estimate and the new inner iterate. ``warm_start`` starts each inner solve from the
    previous one (True) or from the problem's ``y0`` (False). ``batch_size`` draws minibatches of
    a finite-sum problem (``None`` = full batch, deterministic).
    """

    choices: ClassVar[dict[str, tuple]] = {"outer_optimizer": ("sgd", "adam")}

    outer_lr: float = 0.1
    warm_start: bool = True
    batch_size: int | None = None
    outer_optimizer: str = "sgd"
    adam_betas: tuple[float, float] = (0.9, 0.999)

    def sampler(self, oracle: Oracle, state: State, level: str):
        if self.batch_size is None:
            return None
        return lambda: oracle.sample(level, self.batch_size, state.rng)

    def hypergradient(self, oracle: Oracle, x: torch.Tensor, y_init: torch.Tensor, state: State):
        """Return ``(estimate of ∇Ψ(x), new inner iterate)``; may set ``state.aux/diagnostics``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def init(self, oracle: Oracle, x0, y0, seed) -> State:
        state = super().init(oracle, x0, y0, seed)
        state.aux["y0"] = y0.clone()
        return state

    def step(self, oracle: Oracle, state: State) -> State:
        y_init = state.y if self.warm_start else state.aux["y0"]
        estimate, y_new = self.hypergradient(oracle, state.x, y_init, state)
        state.hypergradient = (state.x, estimate)
        state.x = state.x - self.outer_lr * self.direction(estimate, state)
        state.y = y_new
        state.k += 1
        return state

    def direction(self, estimate: torch.Tensor, state: State) -> torch.Tensor:
        """The outer step direction: the estimate itself (sgd) or Adam's m̂ / (√ŝ + ε) (state in ``aux``)."""
        if self.outer_optimizer == "sgd":
            return estimate
        b1, b2 = self.adam_betas
        t = state.k + 1
        m = b1 * state.aux.get("adam_m", torch.zeros_like(estimate)) + (1 - b1) * estimate
        s = b2 * state.aux.get("adam_s", torch.zeros_like(estimate)) + (1 - b2) * estimate * estimate
        state.aux["adam_m"], state.aux["adam_s"] = m, s
        return (m / (1 - b1 ** t)) / (torch.sqrt(s / (1 - b2 ** t)) + 1e-8)
