"""Panel specifications (plain data, importable without matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    """One axes: ``metric`` of ``phase`` against column ``x`` of the aggregate (``time``, ``oracle_calls``, ``step``)."""

    phase: str
    metric: str
    x: str
    title: str
    xlabel: str
    ylabel: str
    logx: bool = True
    logy: bool = True
    center: str = "median"
