"""The one accounting of the package: what an oracle count is, and its two totals (torch-free, so that
the bookkeeping jobs -- aggregates, figures, claims -- can read counts without importing torch).

- ``oracle_calls`` = gradients + second-order products + ``HESSIAN_WEIGHT`` × full Hessians, both levels
  (``specs/fsba.md`` F-3: MCN's K + 3 calls per iteration read as K inner gradients + 1 gradient + 2 for
  the second-order information);
- ``function_evals`` = function values, both levels (the zeroth-order cost).

The counting itself is :class:`bilevel.oracle.Oracle`'s (its docstring lists the kinds).
"""

from __future__ import annotations

from collections.abc import Mapping

LEVELS = ("f", "g")
KINDS = ("value", "grad", "hvp", "hessian")
COUNT_KEYS = tuple(f"{level}_{kind}" for level in LEVELS for kind in KINDS)
#: the two totals of :func:`totals`, in the order of the result rows
TOTAL_KEYS = ("oracle_calls", "function_evals")
#: oracle calls per full Hessian (``specs/fsba.md`` F-3: the "2 for the second-order information" of MCN's
#: K + 3 calls per iteration; Figure 1 of the FSBA paper plots this axis)
HESSIAN_WEIGHT = 2


def derivative_calls(counts: Mapping, hessian_weight=HESSIAN_WEIGHT):
    """Gradients + second-order products + ``hessian_weight`` × full Hessians, both levels.

    ``counts`` maps the :data:`COUNT_KEYS` to numbers (an oracle's counts) or to columns (a trace or an
    aggregate: the sum is taken element-wise). The default weight is the package's ``oracle_calls``;
    another weight gives an alternative axis (e.g. a Hessian = d gradients, F-3).
    """
    return sum(counts[f"{lv}_grad"] + counts[f"{lv}_hvp"] + hessian_weight * counts[f"{lv}_hessian"] for lv in LEVELS)


def totals(counts: Mapping) -> dict:
    """``{"oracle_calls": derivative calls (a Hessian = HESSIAN_WEIGHT), "function_evals": values}`` of a
    per-kind count mapping: the one definition of both totals (module docstring)."""
    return {"oracle_calls": derivative_calls(counts), "function_evals": sum(counts[f"{lv}_value"] for lv in LEVELS)}
