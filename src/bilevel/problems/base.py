"""Problem containers: a bilevel problem is two pure torch functions and a starting point.

``f(x, y[, batch])`` is the upper-level objective, ``g(x, y[, batch])`` the lower-level one, with
``x`` the upper (outer) and ``y`` the lower (inner) variable. ``batch`` is an index tensor selecting
samples of a finite-sum problem; a function that takes only ``(x, y)`` is a deterministic problem
and is always called with two arguments. Minimax problems ``min_x max_y f(x, y)`` have the same
shape with a single function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Objective = Callable[..., torch.Tensor]


def _accepts_batch(fn: Objective) -> bool:
    """True when ``fn`` can be called as ``fn(x, y, batch)``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: assume the full form
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3


def _check_point(name: str, value: torch.Tensor) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != 1:
        raise ValueError(f"{name} must be a 1-D tensor (flatten your parameters), got shape {tuple(value.shape)}")
    if not torch.is_floating_point(value):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    bad = (~torch.isfinite(value)).nonzero()
    if len(bad):
        raise ValueError(f"{name} must be finite: {len(bad)} entr{'y is' if len(bad) == 1 else 'ies are'} NaN or "
                         f"infinite (first at index {int(bad[0])}); start from a finite point")
    return value.detach().clone()


@dataclass
class ClosedForm:
    """Exact quantities of a problem, used only for metrics (never by a method).

    ``y_star(x)`` is the lower-level solution, ``hypergradient(x)`` the exact gradient of
    ``Psi(x) = f(x, y*(x))`` and ``value(x)`` is ``Psi(x)``; any of them may be ``None``.
    """

    y_star: Callable[[torch.Tensor], torch.Tensor] | None = None
    hypergradient: Callable[[torch.Tensor], torch.Tensor] | None = None
    value: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class BilevelProblem:
    """``min_x f(x, y*(x))`` subject to ``y*(x) = argmin_y g(x, y)``.

    Parameters
    ----------
    f, g:
        Upper and lower objectives, ``f(x, y)`` or ``f(x, y, batch)`` returning a scalar tensor.
    x0, y0:
        Initial points (1-D floating tensors); their dtype and device are the problem's.
    n_samples:
        For finite-sum problems, the number of samples that ``batch`` indices range over, as a
        mapping ``{"f": m, "g": n}``; empty for deterministic problems.
    closed_form:
        Optional exact quantities for metrics (:class:`ClosedForm`).
    name, info:
        A label and free-form metadata recorded with results (sizes, seeds, conditioning).
    resample:
        For episodic problems (few-shot meta-learning): ``resample(k)`` installs the data that ``f`` and
        ``g`` see during outer step ``k`` (its meta-batch of tasks). :func:`bilevel.run` calls it before
        every step, outside the timed region; ``None`` for problems whose data never change.
    vectorized:
        Optional fused evaluations, ``{"f": values_f, "g": values_g}`` (either or both levels, or none):
        ``values(xs, ys, batch)`` returns the (B,) values at the B points ``(xs[k], ys[k])``, equal up to
        float rounding to ``vmap`` of the level's function, with ``batch`` None (full data), a 1-D index
        tensor shared by every point or a (B, b) tensor of per-point indices. :meth:`Oracle.values
        <bilevel.oracle.Oracle.values>` uses it instead of ``vmap`` (same counts: one value per point);
        a problem without it is evaluated through ``vmap`` of ``f`` / ``g``.
    """

    f: Objective
    g: Objective
    x0: torch.Tensor
    y0: torch.Tensor
    n_samples: dict[str, int] = field(default_factory=dict)
    closed_form: ClosedForm | None = None
    name: str = "custom"
    info: dict = field(default_factory=dict)
    resample: Callable[[int], None] | None = None
    vectorized: dict[str, Callable[..., torch.Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.f) or not callable(self.g):
            raise TypeError("BilevelProblem needs callables f(x, y) and g(x, y)")
        self.vectorized = dict(self.vectorized or {})
        if set(self.vectorized) - {"f", "g"} or not all(map(callable, self.vectorized.values())):
            raise ValueError(f"vectorized must map levels 'f' / 'g' to callables values(xs, ys, batch), got "
                             f"{self.vectorized!r}")
        self.x0 = _check_point("x0", self.x0)
        self.y0 = _check_point("y0", self.y0)
        if self.x0.dtype != self.y0.dtype or self.x0.device != self.y0.device:
            raise ValueError(
                f"x0 and y0 must share dtype and device, got {self.x0.dtype}/{self.x0.device} "
                f"and {self.y0.dtype}/{self.y0.device}"
            )
        self._batched = {"f": _accepts_batch(self.f), "g": _accepts_batch(self.g)}

    @property
    def dtype(self) -> torch.dtype:
        return self.x0.dtype

    @property
    def device(self) -> torch.device:
        return self.x0.device

    @property
    def dim_outer(self) -> int:
        return self.x0.numel()

    @property
    def dim_inner(self) -> int:
        return self.y0.numel()

    def call(self, level: str, x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor | None = None):
        """Evaluate ``f`` (level ``"f"``) or ``g`` (level ``"g"``) on an optional sample batch."""
        fn = self.f if level == "f" else self.g
        if self._batched[level]:
            return fn(x, y, batch)
        if batch is not None:
            raise ValueError(f"{level} of problem {self.name!r} takes no batch argument")
        return fn(x, y)


@dataclass
class MinimaxProblem:
    """``min_x max_y f(x, y)``; ``f(x, y)`` is nonconvex in x and strongly concave in y."""

    f: Objective
    x0: torch.Tensor
    y0: torch.Tensor
    closed_form: ClosedForm | None = None
    name: str = "minimax"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.f):
            raise TypeError("MinimaxProblem needs a callable f(x, y)")
        self.x0 = _check_point("x0", self.x0)
        self.y0 = _check_point("y0", self.y0)

    def as_bilevel(self) -> BilevelProblem:
        """The same problem as a bilevel one: upper level ``f``, lower level ``−f`` (so y*(x) = argmax_y f).

        Minimax methods use only the level ``"f"`` of the oracle; the closed form (``y*``, ``∇P``,
        ``P``) carries over, so the standard metrics measure ``P(x) = max_y f(x, y)``.
        """
        f = self.f
        return BilevelProblem(f=f, g=lambda x, y: -f(x, y), x0=self.x0, y0=self.y0, closed_form=self.closed_form,
                              name=self.name, info=self.info)
