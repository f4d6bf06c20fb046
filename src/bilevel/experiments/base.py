"""Experiments as data: what a figure runs, how its rows are aggregated, which claims it supports.

An :class:`Experiment` turns its configuration section (``config["experiments"][name]``) into
result rows for one (method label, seed) job, and names its figure function and its claims. A
:class:`Claim` is a check on the aggregated results that returns holds / does not hold / not
evaluated together with the measurement, so that ``figures/claims.md`` reports it either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ..plotting.panels import Panel
from ..results import COUNT_COLUMNS

GROUP_COLUMNS = ["experiment", "phase", "problem", "dataset", "stand_in", "method", "method_name", "step", "metric"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of a claim: ``holds`` is True / False, or None when it could not be evaluated."""

    holds: bool | None
    measurement: str

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


@dataclass(frozen=True)
class Experiment:
    """A figure (or table) of a paper: its jobs, its plot and its claims."""

    name: str
    title: str
    paper: str
    run_job: Callable[[dict, str, int], pd.DataFrame]
    plot: Callable[[pd.DataFrame, dict, list[str]], None]
    claims: tuple[Claim, ...] = field(default_factory=tuple)
    notebook: str = "baselines"  # the notebook (notebooks/<name>.ipynb) that shows this experiment
    #: metrics of the summary table (final value per method, mean ± std over seeds), where measured
    summary_metrics: tuple[str, ...] = ("hypergrad_norm2", "hypergrad_rel_error", "value_gap")
    #: configuration keys this experiment needs besides problem, seeds and methods
    requires: tuple[str, ...] = ()
    #: ``tables(rows, experiment_config) -> [table data]`` replaces the summary table (e.g. sweep grids)
    tables: Callable[[pd.DataFrame, dict], list[dict]] | None = None
    #: GPU jobs (rule ``run_gpu_job``: ``resources: gpu=1``, the GPU environment, device "auto" by default)
    gpu: bool = False
    #: ``run_job`` accepts ``checkpoint_dir`` and resumes interrupted runs from it
    checkpoints: bool = False


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds per (experiment, phase, method, step, metric).

    Columns: the group keys, ``n_seeds``, ``time`` (mean), every count column (mean), ``mean``,
    ``median``, ``std``, ``min``, ``max`` of ``value``, and ``status`` (``diverged`` when any seed
    diverged, else ``completed``).
    """
    if rows.empty:
        raise ValueError("aggregate(): no result rows")
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
        status=("status", lambda s: "diverged" if (s == "diverged").any() else "completed"),
    ).reset_index()
    out["std"] = out["std"].fillna(0.0)
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


def methods_of(exp_cfg: dict, *methods: str) -> list[str]:
    """Labels of the experiment's method entries whose registry name is one of ``methods``."""
    return [lab for lab, e in exp_cfg["methods"].items() if e["method"] in methods]


def run_note(exp_cfg: dict, extra: str = "", our_choice: bool = True) -> str:
    """The line under a figure's title: problem and its parameters, number of seeds, how curves are drawn."""
    prob = exp_cfg["problem"]
    params = ", ".join(f"{k}={v}" for k, v in prob.get("params", {}).items() if not isinstance(v, dict))
    n = len(exp_cfg["seeds"])
    return (f"{prob['name']}({params}); {n} seed{'s' if n != 1 else ''} (median, band = min-max)"
            + ("; our choice" if our_choice else "") + extra)


def phases(exp_cfg: dict, default: str = "optimization") -> list[str]:
    """The phases of an experiment's jobs: its case names, or the single default phase."""
    return list(exp_cfg.get("cases") or {default: {}})


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


def curve(agg: pd.DataFrame, method: str, metric: str, phase: str) -> pd.DataFrame:
    """Rows of one aggregated curve, sorted by step."""
    sel = agg[(agg["method"] == method) & (agg["metric"] == metric) & (agg["phase"] == phase)]
    return sel.sort_values("step")


def first_reaching(agg: pd.DataFrame, method: str, metric: str, phase: str, tol: float,
                   stat: str = "max", x: str = "oracle_calls") -> float | None:
    """Smallest ``x`` (mean over seeds) at which ``stat`` of ``metric`` over seeds is <= ``tol``."""
    c = curve(agg, method, metric, phase)
    hit = c[c[stat] <= tol]
    return None if hit.empty else float(hit[x].iloc[0])


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
