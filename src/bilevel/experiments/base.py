"""Experiments as data: what a figure runs, how its rows are aggregated, which claims it supports.

An :class:`Experiment` turns its configuration section (``config["experiments"][name]``) into
result rows for one (method label, seed) job, and names its figure function and its claims. A
:class:`Claim` is a check on the aggregated results that returns holds / does not hold / not
evaluated together with the measurement, so that ``figures/claims.md`` reports it either way.

Queries on an aggregated curve (one method, metric and phase, in step order) live here, each once,
with one rule for values that are not finite (NaN where nothing was measured or a run diverged,
±inf where it overflowed): a non-finite value is never a measurement. :func:`first_reaching` never
counts it as reaching a target, :func:`final_value` skips it (a diverged run's last finite point) and
returns None when no finite value is left, and a claim that gets None reports "not evaluated".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..plotting.panels import Panel
from ..results import COUNT_COLUMNS
from .config import method_spec

GROUP_COLUMNS = ["experiment", "phase", "problem", "dataset", "stand_in", "method", "method_name", "step", "metric"]
#: the columns of :func:`aggregate`, in order
AGGREGATE_COLUMNS = (*GROUP_COLUMNS, "n_seeds", "time", *COUNT_COLUMNS, "mean", "median", "std", "min", "max", "status")


@dataclass(frozen=True)
class Verdict:
    """Outcome of a claim: ``holds`` is True / False, or None when it could not be evaluated."""

    holds: bool | None
    measurement: str

    def __post_init__(self):  # numpy booleans (e.g. from ``holds &= x < y``) become Python ones
        object.__setattr__(self, "holds", None if self.holds is None else bool(self.holds))

    @property
    def label(self) -> str:
        return {True: "holds", False: "does not hold", None: "not evaluated"}[self.holds]


@dataclass(frozen=True)
class Claim:
    """A statement the figure supports, checked on the aggregated results of its experiment.

    ``statement`` is what we check, ``source`` whose statement it is (paper, section, tag),
    ``check(aggregate, experiment_config) -> Verdict`` does the measuring.
    """

    id: str
    statement: str
    source: str
    check: Callable[[pd.DataFrame, dict], Verdict]


def phases(exp_cfg: dict, default: str = "optimization") -> list[str]:
    """The phases of an experiment's jobs: its case names, or the single default phase."""
    return list(exp_cfg.get("cases") or {default: {}})


@dataclass(frozen=True)
class Experiment:
    """A figure (or table) of a paper: its jobs, its plot and its claims.

    ``run_job(name, exp_cfg, label, seed, device="cpu", progress=False)`` returns the result rows of one
    (method label, seed) job of the experiment registered as ``name`` (the caller passes the name, so one
    job function serves several experiments); with ``checkpoints``, it also accepts ``checkpoint_dir``.
    """

    name: str
    title: str
    paper: str
    run_job: Callable[..., pd.DataFrame]
    plot: Callable[[pd.DataFrame, dict, list[str]], None]
    claims: tuple[Claim, ...] = field(default_factory=tuple)
    notebook: str = "baselines"  # the notebook (notebooks/<name>.ipynb) that shows this experiment
    #: the metrics (recorded by its jobs) that its plot, claims and summary read; the summary metrics among them
    metrics: tuple[str, ...] = ("hypergrad_norm2", "hypergrad_rel_error", "value_gap")
    #: ``job_phases(exp_cfg) -> [phase]``: the phases of the rows its jobs write
    job_phases: Callable[[dict], list[str]] = phases
    #: metrics of the summary table (final value per method, mean ± std over seeds), where measured
    summary_metrics: tuple[str, ...] = ("hypergrad_norm2", "hypergrad_rel_error", "value_gap")
    #: configuration keys this experiment needs besides problem, seeds and methods
    requires: tuple[str, ...] = ()
    #: ``tables(rows, experiment_config) -> [table data]`` replaces the summary table (e.g. sweep grids)
    tables: Callable[[pd.DataFrame, dict], list[dict]] | None = None
    #: GPU jobs: the job rule `run_job` gives them `resources: gpu=1` and envs/gpu.yaml (the one source of both)
    gpu: bool = False
    #: ``run_job`` accepts ``checkpoint_dir`` and resumes interrupted runs from it
    checkpoints: bool = False
    #: a comparison of methods (needs a tuning stage: every method tuned on held-out seeds, or fixed with a
    #: reason, :mod:`.tuning`); False for a study of one method's parameter (Figures 6-8, the sweeps)
    comparative: bool = True


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per (experiment, phase, method, step, metric).

    Columns: the group keys, ``n_seeds``, ``time`` (mean), every count column (mean), ``mean``,
    ``median``, ``std``, ``min``, ``max`` of ``value``, and ``status`` (``diverged`` when any seed
    diverged, else ``completed``).
    """
    if rows.empty:
        raise ValueError("aggregate(): no result rows")
    rows = rows.assign(_diverged=rows["status"].eq("diverged"))  # vectorized "any seed diverged"
    grouped = rows.groupby(GROUP_COLUMNS, sort=True, dropna=False)
    out = grouped.agg(
        n_seeds=("seed", "nunique"),
        time=("time", "mean"),
        **{c: (c, "mean") for c in COUNT_COLUMNS},
        mean=("value", "mean"),
        median=("value", "median"),
        std=("value", "std"),
        min=("value", "min"),
        max=("value", "max"),
        _diverged=("_diverged", "max"),
    ).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["status"] = np.where(out.pop("_diverged").astype(bool), "diverged", "completed")
    return out


def dataset_label(agg: pd.DataFrame) -> str:
    """``STAND-IN: <stand-in> for <official>`` or the dataset name, for every distinct dataset of the rows
    (joined by ", " in order of appearance; empty for synthetic problems)."""
    if "dataset" not in agg or not agg["dataset"].fillna("").any():
        return ""
    stand_ins = agg["stand_in"] if "stand_in" in agg else pd.Series("", index=agg.index)
    labels: list[str] = []
    for dataset, stand_in in zip(agg["dataset"].fillna(""), stand_ins.fillna(""), strict=True):
        label = f"STAND-IN: {dataset} for {stand_in}" if isinstance(stand_in, str) and stand_in else str(dataset)
        if dataset and label not in labels:
            labels.append(label)
    return ", ".join(labels)


def case_params(exp_cfg: dict, phase: str) -> dict:
    """The problem parameters of a case: the problem's own, with the case's overrides (none for a phase
    that is not a case)."""
    return {**exp_cfg["problem"].get("params", {}), **(exp_cfg.get("cases") or {}).get(phase, {})}


def methods_of(exp_cfg: dict, *methods: str) -> list[str]:
    """Labels of the experiment's method entries whose registry name is one of ``methods``."""
    return [lab for lab, e in exp_cfg["methods"].items() if e["method"] in methods]


def method_param(exp_cfg: dict, label: str, name: str, phase: str | None = None):
    """The effective hyper-parameter ``name`` of method ``label`` (the method's default where the
    configuration leaves it out; ``phase`` overrides applied as in the jobs)."""
    from .. import methods as method_registry  # imported here: the bookkeeping jobs import this module without torch

    mname, params = method_spec(exp_cfg, label, phase)
    return getattr(method_registry.make(mname, **params), name)


def run_note(exp_cfg: dict, extra: str = "", our_choice: bool = True) -> str:
    """The line under a figure's title: problem and its parameters, number of seeds, how curves are drawn."""
    prob = exp_cfg["problem"]
    params = ", ".join(f"{k}={v}" for k, v in prob.get("params", {}).items() if not isinstance(v, dict))
    n = len(exp_cfg["seeds"])
    return (f"{prob['name']}({params}); {n} seed{'s' if n != 1 else ''} (median, band = min-max)"
            + ("; our choice" if our_choice else "") + extra)


def case_panels(exp_cfg: dict, agg: pd.DataFrame, rows: list[tuple[str, str, bool]],
                title: Callable[[pd.DataFrame, str, dict], str], x: str = "time", xlabel: str = "time [s]",
                logx: bool = False, default: str = "optimization") -> list[list[Panel]]:
    """A grid of panels: one column per case, one row per ``(metric, y-label, log-y)`` of ``rows``, each
    against ``x``; ``title(agg, phase, overrides)`` names a case. A single case is drawn as one row."""
    names = phases(exp_cfg, default)
    cases = exp_cfg.get("cases") or {default: {}}

    def panel(i: int, phase: str, metric: str, ylabel: str, logy: bool) -> Panel:
        return Panel(phase, metric, x, f"({chr(ord('a') + i)}) {title(agg, phase, cases[phase])}", xlabel, ylabel,
                     logx=logx, logy=logy)

    if len(names) == 1:
        return [[panel(i, names[0], *row) for i, row in enumerate(rows)]]
    return [[panel(r * len(names) + c, phase, *row) for c, phase in enumerate(names)] for r, row in enumerate(rows)]


def _numeric(values: pd.Series) -> pd.Series:
    """``values`` as floats (an empty column read from a CSV has no numeric type)."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def curve(agg: pd.DataFrame, method: str, metric: str, phase: str) -> pd.DataFrame:
    """Rows of one aggregated curve, sorted by step."""
    sel = agg[(agg["method"] == method) & (agg["metric"] == metric) & (agg["phase"] == phase)]
    return sel.sort_values("step")


def first_reaching(agg: pd.DataFrame, method: str, metric: str, phase: str, target: float, stat: str = "max",
                   x: str = "oracle_calls", lower: bool = True, after_start: bool = False) -> float | None:
    """``x`` (mean over seeds) at the first evaluation, in step order, where ``stat`` of ``metric`` over
    seeds reaches ``target``: ``<= target`` (``lower``) or ``>= target``; ``after_start`` skips step 0 (the
    initial point). A non-finite ``stat`` never reaches a target. None when no evaluation does."""
    c = curve(agg, method, metric, phase)
    if after_start:
        c = c[c["step"] > 0]
    values = _numeric(c[stat])
    hit = c[np.isfinite(values) & ((values <= target) if lower else (values >= target))]
    return None if hit.empty else float(hit[x].iloc[0])


def final_value(agg: pd.DataFrame, method: str, metric: str, phase: str, stat: str = "median") -> float | None:
    """The last finite ``stat`` (over seeds) of ``metric`` in step order -- for a diverged run its last
    finite point; None when the curve has no finite value (nothing recorded, or every value NaN / ±inf)."""
    values = _numeric(curve(agg, method, metric, phase)[stat])
    values = values[np.isfinite(values)]
    return None if values.empty else float(values.iloc[-1])


def diverged(agg: pd.DataFrame, method: str, metric: str, phase: str) -> bool:
    """Whether the curve ends diverged: status ``diverged`` (in some seed) at its last evaluation (a run's
    status is on every row of it; a sweep has one per budget)."""
    c = curve(agg, method, metric, phase)
    return not c.empty and c["status"].iloc[-1] == "diverged"


def decrease_factor(agg: pd.DataFrame, method: str, metric: str, phase: str) -> float | None:
    """Median ``metric`` at the first evaluation over the median at the last, for a curve of at least two
    evaluations whose runs all completed; None otherwise (a diverged run has no decrease to report) and
    where either median is not finite."""
    c = curve(agg, method, metric, phase)
    if len(c) < 2 or not (c["status"] == "completed").all():
        return None
    first, last = _numeric(c["median"]).iloc[[0, -1]]
    if not (np.isfinite(first) and np.isfinite(last)):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):  # a last value of exactly 0: an infinite decrease
        return float(np.float64(first) / last)


#: default of an experiment's ``claims.time_margin``: a time-based claim "A is faster than B" holds only when A
#: needs at most (1 - margin) times B's time, so that timer noise between identical runs cannot flip it
TIME_MARGIN = 0.1


def time_margin(exp_cfg: dict) -> float:
    """The experiment's ``claims.time_margin`` (a fraction in [0, 1); default :data:`TIME_MARGIN`)."""
    margin = float(exp_cfg.get("claims", {}).get("time_margin", TIME_MARGIN))
    if not 0 <= margin < 1:
        raise ValueError(f"claims.time_margin must be in [0, 1), got {margin!r}")
    return margin


def faster(t: float | None, reference: float | None, margin: float) -> bool:
    """Whether time ``t`` beats ``reference`` by the margin: ``t <= (1 - margin) * reference``. None is
    "never" (the target was not reached): a ``t`` of None never beats, a ``reference`` of None is always beaten
    by a time."""
    if t is None:
        return False
    return reference is None or t <= (1.0 - margin) * reference


def margin_note(margin: float) -> str:
    """How a time-based verdict was decided, for its measurement text."""
    return f"faster = at least {100 * margin:g}% less time (claims.time_margin)"


def final_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of every (phase, method, seed, metric) of per-seed result rows."""
    last = rows.sort_values("step").groupby(["phase", "method", "seed", "metric"], sort=False).tail(1)
    return last.reset_index(drop=True)


def summary_table(rows: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Per (phase, method): seeds, final step, time, function evaluations, oracle calls and each metric of
    ``metrics`` that was measured, as mean and std over seeds of the last evaluation."""
    last = final_rows(rows)
    out = []
    for (phase, method), grp in last.groupby(["phase", "method"], sort=True):
        first = grp[grp["metric"] == grp["metric"].iloc[0]]
        row = {"phase": phase, "method": method, "seeds": int(first["seed"].nunique()),
               "status": "diverged" if (grp["status"] == "diverged").any() else "completed",
               "final step": (first["step"].mean(), first["step"].std(ddof=0)),
               "time [s]": (first["time"].mean(), first["time"].std(ddof=0)),
               "function evals": (first["function_evals"].mean(), first["function_evals"].std(ddof=0)),
               "oracle calls": (first["oracle_calls"].mean(), first["oracle_calls"].std(ddof=0))}
        for metric in metrics:
            sel = grp.loc[grp["metric"] == metric, "value"]
            if not sel.empty:
                row[metric] = (sel.mean(), sel.std(ddof=0))
        out.append(row)
    return pd.DataFrame(out)
