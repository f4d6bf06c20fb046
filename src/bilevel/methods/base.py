"""Method protocol: frozen hyper-parameters, ``init`` / ``step`` on a state, a registry.

A method is a frozen dataclass whose fields are its hyper-parameters (defaults from its paper).
``init(oracle, x0, y0, seed)`` returns a :class:`State`; ``step(oracle, state)`` advances it by one
outer iteration; ``outer(state)`` / ``inner(state)`` return the current iterates. All oracle access
goes through the :class:`~bilevel.oracle.Oracle` passed in, so every call is counted.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..limits import LIMIT_KINDS, ParameterError, choice, interval
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


#: the limit kinds a method declares as class attributes (:data:`bilevel.limits.LIMIT_KINDS`)
METHOD_LIMIT_KINDS = ("positive", "nonnegative", "counts", "at_least_one")


@dataclass(frozen=True)
class Method:
    """Base class of all methods; subclasses set ``name`` and override ``step``.

    The limits of the hyper-parameters are declared here, once, as class attributes (validated on
    construction; a violation raises :class:`ParameterError` naming the method and the parameter;
    a bool is never accepted as a number): ``positive`` (numbers > 0), ``nonnegative`` (numbers >= 0),
    ``counts`` (integers >= 0), ``at_least_one`` (integers >= 1), ``intervals`` (name -> an interval
    such as ``"[0, 1)"``), ``choices`` (name -> the allowed values; a name in ``callables`` also
    accepts a user callable), ``optional`` (the parameters that may also be ``None``).
    """

    name: ClassVar[str] = "method"
    #: what the method runs on: "bilevel" (:class:`~bilevel.problems.BilevelProblem`, :func:`bilevel.run`),
    #: "minimax" (:class:`~bilevel.problems.MinimaxProblem`) or "online" (a stream, :func:`bilevel.online.run_online`)
    problem_kind: ClassVar[str] = "bilevel"
    positive: ClassVar[tuple[str, ...]] = ()
    nonnegative: ClassVar[tuple[str, ...]] = ()
    counts: ClassVar[tuple[str, ...]] = ()
    at_least_one: ClassVar[tuple[str, ...]] = ()
    intervals: ClassVar[dict[str, str]] = {}
    choices: ClassVar[dict[str, tuple]] = {}
    callables: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    #: whether the method's oracle calls use torch.func transforms (vectorized values, full Hessians);
    #: the runners pay torch.func's one-off start-up before timing only for such methods
    uses_torch_func: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for pname, requirement, ok in self._limits():
            value = getattr(self, pname)
            if value is None and pname in self.optional:
                continue
            if not ok(value):
                raise ParameterError.of_limit(self.name, pname, requirement, value)

    @classmethod
    def _limits(cls):
        """``(parameter, requirement, test)`` for every declared limit."""
        for kind in METHOD_LIMIT_KINDS:
            test, requirement = LIMIT_KINDS[kind]
            for pname in getattr(cls, kind):
                yield pname, requirement + (" or None" if pname in cls.optional else ""), test
        for pname, spec in cls.intervals.items():
            yield pname, f"must be in {spec}", interval(spec)
        for pname, allowed in cls.choices.items():
            also = " or a callable" if pname in cls.callables else ""
            yield pname, f"must be one of {', '.join(map(str, allowed))}{also}", choice(allowed, pname in cls.callables)

    def params(self) -> dict:
        """Hyper-parameters as a plain dict (recorded with every result); a callable is recorded by its
        qualified name (``module.qualname``)."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values[f.name] = _qualified_name(value) if callable(value) else copy.deepcopy(value)
        return values

    def init(self, oracle: Oracle, x0: torch.Tensor, y0: torch.Tensor, seed: int) -> State:
        return State(x=x0.clone(), y=y0.clone(), rng=make_generator(seed))

    def step(self, oracle: Oracle, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def outer(self, state: State) -> torch.Tensor:
        return state.x

    def inner(self, state: State) -> torch.Tensor:
        return state.y


def _qualified_name(obj) -> str:
    owner = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{owner.__module__}.{owner.__qualname__}"


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

    positive: ClassVar[tuple[str, ...]] = ("outer_lr",)
    at_least_one: ClassVar[tuple[str, ...]] = ("batch_size",)
    optional: ClassVar[tuple[str, ...]] = ("batch_size",)
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
