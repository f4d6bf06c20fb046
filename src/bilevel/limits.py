"""Declared limits of parameters: one place that says what a valid value is, for methods and problems alike.

A method class declares its limits as class attributes (:class:`bilevel.methods.base.Method`); a problem
factory declares them when it registers (``@register("quadratic", limits={...})``,
:mod:`bilevel.problems.registry`). The same declaration is checked by the library on construction and by
the workflow at parse time (:func:`bilevel.experiments.check_config`), so there is no second list to keep
in sync. A limit is

- a kind: ``"positive"`` (a number > 0), ``"nonnegative"`` (>= 0), ``"number"``, ``"counts"`` (an integer
  >= 0), ``"at_least_one"`` (an integer >= 1), ``"at_least_two"``, ``"boolean"``, ``"string"``;
- an interval of numbers such as ``"[0, 1)"`` (bracket = closed end, parenthesis = open end);
- a tuple of the allowed values;
- a callable ``value -> None | str`` (the requirement text when the value is invalid);

any of them followed by ``" or None"`` (a string limit) also accepts None. A bool is never a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class ParameterError(ValueError):
    """A parameter value is invalid; the message names the owner (method, problem) and the parameter.
    For a violated limit, ``param``, ``requirement`` and ``value`` say which (the config checks re-word it
    to name the config key)."""

    def __init__(self, message: str, *, param: str | None = None, requirement: str | None = None, value=None):
        super().__init__(message)
        self.param, self.requirement, self.value = param, requirement, value

    @classmethod
    def of_limit(cls, owner: str, param: str, requirement: str, value) -> ParameterError:
        return cls(f"{owner}: parameter {param} {requirement}, got {value!r}", param=param, requirement=requirement,
                   value=value)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def interval(spec: str) -> Callable[[object], bool]:
    """``"[0, 1)"`` -> a predicate on numbers (bracket = closed end, parenthesis = open end)."""
    low, high = (float(part) for part in spec[1:-1].split(","))
    above = (lambda v: v >= low) if spec[0] == "[" else (lambda v: v > low)
    below = (lambda v: v <= high) if spec[-1] == "]" else (lambda v: v < high)
    return lambda v: is_number(v) and above(v) and below(v)


def choice(allowed, accepts_callable: bool = False) -> Callable[[object], bool]:
    """A predicate: one of ``allowed`` (a bool only where a bool is listed), or a callable if accepted."""
    options = tuple(allowed)

    def test(v) -> bool:
        if accepts_callable and callable(v):
            return True
        return any(v == o and isinstance(v, bool) == isinstance(o, bool) for o in options)

    return test


#: the named limit kinds: name -> (test of a value, what it requires)
LIMIT_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "positive": (lambda v: is_number(v) and v > 0, "must be > 0"),
    "nonnegative": (lambda v: is_number(v) and v >= 0, "must be >= 0"),
    "number": (is_number, "must be a number"),
    "counts": (lambda v: is_integer(v) and v >= 0, "must be an integer >= 0"),
    "at_least_one": (lambda v: is_integer(v) and v >= 1, "must be an integer >= 1"),
    "at_least_two": (lambda v: is_integer(v) and v >= 2, "must be an integer >= 2"),
    "boolean": (lambda v: isinstance(v, bool), "must be true or false"),
    "string": (lambda v: isinstance(v, str), "must be a string"),
}

Limit = str | tuple | Callable[[object], "str | None"]


def requirement_of(limit: Limit) -> tuple[Callable[[object], str | None], bool]:
    """``(check, optional)`` of a declared limit: ``check(value)`` is None when the value is valid, else the
    requirement it violates; ``optional``: None is also accepted."""
    optional = isinstance(limit, str) and limit.endswith(" or None")
    if optional:
        limit = limit[: -len(" or None")]
    tail = " or None" if optional else ""
    if isinstance(limit, tuple):
        test, text = choice(limit), f"must be one of {', '.join(map(str, limit))}{tail}"
    elif isinstance(limit, str) and limit in LIMIT_KINDS:
        test, text = LIMIT_KINDS[limit][0], LIMIT_KINDS[limit][1] + tail
    elif isinstance(limit, str) and limit[:1] in "[(" and limit[-1:] in "])":
        test, text = interval(limit), f"must be in {limit}{tail}"
    elif callable(limit):
        def custom(value):
            found = limit(value)
            return None if found is None else found + tail
        return custom, optional
    else:
        raise ValueError(f"not a limit declaration: {limit!r} (a kind {', '.join(LIMIT_KINDS)}, an interval, "
                         f"a tuple of values or a callable)")
    return (lambda value: None if test(value) else text), optional


def integer_in(low: int, high: int) -> Callable[[object], str | None]:
    """A callable limit: an integer in ``[low, high]``."""
    return lambda v: None if is_integer(v) and low <= v <= high else f"must be an integer in [{low}, {high}]"


def sequence(item: str, requirement: str, length: int | None = None, optional: bool = False):
    """A callable limit: a non-empty list (of ``length`` items, if given) whose every item meets the limit
    ``item`` (a kind or an interval); ``optional``: None too. ``requirement`` is the text of a violation."""
    check = requirement_of(item)[0]

    def test(value) -> str | None:
        if value is None and optional:
            return None
        ok = isinstance(value, (list, tuple)) and bool(value) and (length is None or len(value) == length) \
            and all(check(v) is None for v in value)
        return None if ok else requirement

    return test


#: None or a non-empty list of names (e.g. dataset splits)
names_or_none = sequence("string", "must be a non-empty list of names or None", optional=True)


def check_values(owner: str, values: Mapping, limits: Mapping[str, Limit]) -> None:
    """Raise :class:`ParameterError` for the first value of ``values`` outside its declared limit (values
    without a limit, and limits without a value, are not checked)."""
    for name, limit in limits.items():
        if name not in values:
            continue
        check, optional = requirement_of(limit)
        value = values[name]
        if value is None and optional:
            continue
        problem = check(value)
        if problem is not None:
            raise ParameterError.of_limit(owner, name, problem, value)
