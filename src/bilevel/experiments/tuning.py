"""Tuning as a stage of the workflow: grids on held-out seeds -> a selection file -> the figure's runs.

The protocol (the ``benchopt`` practice -- a grid for every solver, the best parameters, medians over
seeds -- made a reproducible, inspectable file):

- a method entry of a comparative experiment either declares a grid, ``tune: {param: [values], ...}``
  (full factorial, cells ``c0, c1, ...`` in row-major order of the keys as written), or says why its
  values are fixed, ``fixed: "<reason>"`` (e.g. a paper's stated setting);
- the experiment's ``tuning`` section names the criterion and the tuning seeds, disjoint from its
  figure seeds::

      tuning:
        seeds: [101]                  # never a figure seed (checked at parse time)
        metric: validation_loss       # recorded by every method's jobs
        mode: min                     # or max
        statistic: median             # over tuning seeds: median or mean
        at: final                     # the run's value: final (last evaluation) or mean (over its evaluations)
        budget: {max_iters: 30}       # optional: replaces keys of the optimization / online section
        problem: {eval_split: val}    # optional: problem parameters of the tuning runs (select on validation)

- one tuning job per (method, cell, tuning seed) runs the experiment's own job with the cell's values
  (every method of the experiment under the same budget); its **score** is ``metric`` at the run's last
  evaluation (``at: final``) or its mean over the run's evaluations (``at: mean``, e.g. accuracy under an
  online attack over the stream), averaged over the experiment's phases (cases); a run that diverged (or whose metric is not
  finite) scores worst (+inf for ``min``); the cell's score is ``statistic`` over seeds;
- the **choice** is the best cell (ties: the first in grid order); a numeric parameter chosen at the
  smallest or largest value of a grid of at least two values is flagged ``edge``: the grid may not
  contain the optimum;
- the selection (grid, every cell's per-seed and overall score, choice, edge flags, criterion, seeds,
  budget, and the ``key`` of the configuration it was made for) is written to
  ``results/tuning/<experiment>/selection.json``; the figure's jobs run with the chosen values.

``selections: committed`` (the default config: tuning takes longer than the 20-minute budget of the
default DAG) reads the selections committed in ``config/selections/<experiment>.json`` instead; they
were produced by ``snakemake tune`` (which rebuilds them under ``results/tuning/`` and reports whether
they equal the committed files). A committed selection made for another configuration of its experiment
(different grid, criterion, problem, budget, parameters: a different ``key``) is refused at parse time.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import config_hash
from .config import ConfigError, _check_factory_params, method_spec

#: parts of an experiment's section that do not change what a tuning run measures
_NOT_IN_KEY = ("seeds", "claims", "device")
STATISTICS = ("median", "mean")
AT = ("final", "mean")
MODES = ("min", "max")
#: the sections whose ``params`` / a method's ``<section>_params`` override its own parameters
PHASE_SECTIONS = ("optimization", "online")


def tuned(exp_cfg: dict) -> bool:
    """Whether the experiment has a tuning stage (a ``tuning`` section)."""
    return bool(exp_cfg.get("tuning"))


def cells(entry: dict) -> list[tuple[str, dict]]:
    """``(name, overrides)`` of a method entry's ``tune`` grid (full factorial in the keys' order; a key
    ``"beta+delta"`` sets both parameters to each of its values); a method without a grid has the single
    cell ``c0`` of no overrides."""
    grid = entry.get("tune") or {}
    names = list(grid)

    def overrides(values) -> dict:
        return {param: value for name, value in zip(names, values, strict=True) for param in name.split("+")}

    return [(f"c{i}", overrides(values))
            for i, values in enumerate(itertools.product(*(grid[n] for n in names)))] or [("c0", {})]


def with_params(exp_cfg: dict, label: str, overrides: dict) -> dict:
    """A copy of the experiment with ``overrides`` on method ``label``'s parameters, winning over the
    phase sections' shared ``params`` as well (they are written into ``<phase>_params`` too)."""
    out = copy.deepcopy(exp_cfg)
    if not overrides:
        return out
    entry = out["methods"][label]
    entry["params"] = {**entry.get("params", {}), **overrides}
    for phase in PHASE_SECTIONS:
        if phase in out and ("params" in out[phase] or f"{phase}_params" in entry):
            entry[f"{phase}_params"] = {**entry.get(f"{phase}_params", {}), **overrides}
    return out


def tuning_config(exp_cfg: dict, label: str, cell: str) -> dict:
    """The experiment as one tuning job of (method ``label``, grid ``cell``) runs it: the cell's values,
    the tuning seeds, the tuning budget over the optimization / online section, and the tuning problem
    parameters (e.g. held-out accuracy on validation classes instead of the test classes)."""
    overrides = dict(cells(exp_cfg["methods"][label]))
    if cell not in overrides:
        raise KeyError(f"experiments: method {label!r} has no grid cell {cell!r}; cells: {', '.join(overrides)}")
    out = with_params(exp_cfg, label, overrides[cell])
    section = out["tuning"]
    out["seeds"] = list(section["seeds"])
    for phase in PHASE_SECTIONS:
        if phase in out:
            out[phase] = {**out[phase], **section.get("budget", {})}
    if section.get("problem"):
        out["problem"] = {**out["problem"], "params": {**out["problem"].get("params", {}), **section["problem"]}}
    return out


#: the workflow's config schema (a source checkout); its defaults are part of what a key hashes
_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(node, schema: dict, defs: dict):
    """``node`` with the schema's ``default`` values filled in where absent (as Snakemake's validation with
    ``set_default=True`` does), so that a key is the same for a config read by Snakemake or by Python."""
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = _with_defaults(out[key], sub, defs)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in set(out) - set(schema.get("properties", {})):
            out[key] = _with_defaults(out[key], extra, defs)
    return out


def selection_key(exp_cfg: dict) -> str:
    """The hash of what a selection depends on: the experiment's section (schema defaults filled in)
    without its figure seeds, claims and device (a committed selection is valid only for the
    configuration it was made for)."""
    if _SCHEMA.is_file():
        import yaml

        schema = yaml.safe_load(_SCHEMA.read_text())
        exp_cfg = _with_defaults(exp_cfg, schema["$defs"]["experiment"], schema["$defs"])
    return config_hash({k: v for k, v in exp_cfg.items() if k not in _NOT_IN_KEY})


def run_score(rows: pd.DataFrame, metric: str, mode: str, at: str = "final") -> float:
    """The criterion's value of one run: ``metric`` at its last evaluation (``at="final"``) or its mean over
    the evaluations (``"mean"``), mean over phases; the worst value (``inf`` for ``min``, ``-inf`` for
    ``max``) when a phase diverged, or lacks a finite value."""
    worst = math.inf if mode == "min" else -math.inf
    values = []
    for _, grp in rows.groupby("phase", sort=True):
        sel = grp[grp["metric"] == metric].sort_values("step")
        if sel.empty or (grp["status"] == "diverged").any():
            return worst
        last = float(sel["value"].iloc[-1]) if at == "final" else float(sel["value"].mean())
        if not math.isfinite(last):
            return worst
        values.append(last)
    return float(np.mean(values)) if values else worst


def _edges(entry: dict, choice: dict) -> list[str]:
    """The numeric parameters chosen at an end of their grid (of at least two values)."""
    out = []
    for name, values in (entry.get("tune") or {}).items():
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        chosen = choice[name.split("+")[0]]
        if len(numeric) >= 2 and len(numeric) == len(values) and chosen in (min(numeric), max(numeric)):
            out.append(name)
    return out


def select(exp_name: str, exp_cfg: dict, scores: dict[str, dict[str, dict[int, float]]]) -> dict:
    """The selection of experiment ``exp_name`` from per-run scores ``{label: {cell: {seed: score}}}``."""
    section = exp_cfg["tuning"]
    mode, stat = section.get("mode", "min"), section.get("statistic", "median")
    reduce = np.median if stat == "median" else np.mean
    methods = {}
    for label, entry in exp_cfg["methods"].items():
        if "fixed" in entry and "tune" not in entry:
            methods[label] = {"fixed": entry["fixed"], "params": {}}
            continue
        table = []
        for cell, overrides in cells(entry):
            per_seed = scores[label][cell]
            values = [per_seed[s] for s in sorted(per_seed)]
            score = float(reduce(values)) if values else (math.inf if mode == "min" else -math.inf)
            table.append({"cell": cell, "params": overrides, "per_seed": {str(s): per_seed[s] for s in sorted(per_seed)},
                          "score": score})
        finite = [c for c in table if math.isfinite(c["score"])]
        best = (min if mode == "min" else max)(finite, key=lambda c: c["score"]) if finite else table[0]
        methods[label] = {"grid": entry.get("tune") or {}, "cells": table, "choice": best["cell"],
                          "params": best["params"], "edge": _edges(entry, best["params"]),
                          "all_diverged": not finite}
    return {"experiment": exp_name, "key": selection_key(exp_cfg),
            "criterion": {"metric": section["metric"], "mode": mode, "statistic": stat,
                          "at": section.get("at", "final")},
            "seeds": list(section["seeds"]), "budget": section.get("budget", {}),
            "problem": section.get("problem", {}), "methods": methods}


def apply(exp_cfg: dict, selection: dict | None) -> dict:
    """The experiment with every method's chosen values (unchanged without a tuning stage)."""
    if selection is None:
        return exp_cfg
    out = exp_cfg
    for label, chosen in selection["methods"].items():
        if label in out["methods"]:
            out = with_params(out, label, chosen.get("params", {}))
    return out


def selection_path(config: dict, exp_name: str) -> Path:
    """Where the figure jobs of ``exp_name`` read their selection: the committed file (``selections:
    committed``) or the tuning stage's output (``selections: run``)."""
    if config.get("selections", "committed") == "run":
        return Path(config.get("results_dir", "results")) / "tuning" / exp_name / "selection.json"
    return Path(config.get("selections_dir", "config/selections")) / f"{exp_name}.json"


def check_tuning(name: str, exp_cfg: dict) -> None:
    """Parse-time checks of a tuning stage: criterion, seeds disjoint from the figure's, every method
    tuned on a grid or fixed with a reason, grids of lists."""
    where = f"experiments.{name}.tuning"
    section = exp_cfg["tuning"]
    for key, allowed in (("mode", MODES), ("statistic", STATISTICS), ("at", AT)):
        if section.get(key, allowed[0]) not in allowed:
            raise ConfigError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {section.get(key)!r}")
    seeds = section.get("seeds") or []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}.seeds: need a non-empty list of distinct seeds, got {seeds!r}")
    shared = sorted(set(seeds) & set(exp_cfg.get("seeds", [])))
    if shared:
        raise ConfigError(f"{where}.seeds: {shared} are also figure seeds (experiments.{name}.seeds); tuning "
                          "seeds must be held out")
    if section.get("problem"):
        from .. import problems as problem_registry  # imported here: the bookkeeping jobs import this module without torch

        _check_factory_params(problem_registry.get_factory(exp_cfg["problem"]["name"]), section["problem"],
                              f"{where}.problem")
    if not section.get("metric"):
        raise ConfigError(f"{where}.metric: required (the metric the selection minimizes or maximizes)")
    for label, entry in exp_cfg["methods"].items():
        key = f"experiments.{name}.methods.{label}"
        if "tune" not in entry and not entry.get("fixed"):
            raise ConfigError(f"{key}: a method of a tuned experiment needs a grid (tune: {{param: [values]}}) or "
                              "fixed: '<why its values are fixed>'")
        for param, values in (entry.get("tune") or {}).items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{key}.tune.{param}: must be a non-empty list of values, got {values!r}")
        for cell, overrides in cells(entry) if "tune" in entry else ():
            from .. import methods as method_registry  # imported here: the bookkeeping jobs import this module without torch

            mname, params = method_spec(with_params(exp_cfg, label, overrides), label)
            try:
                method_registry.make(mname, **params)
            except (ValueError, TypeError) as err:
                raise ConfigError(f"{key}.tune: cell {cell} ({overrides}): {err}") from None


def read_selection(config: dict, name: str, path: str | Path | None = None) -> tuple[dict | None, Path | None]:
    """``(selection, path)`` of a tuned experiment (``path`` defaults to where ``config["selections"]``
    says), checked against the experiment's configuration; ``(None, None)`` without a tuning stage."""
    exp_cfg = config["experiments"][name]
    if not tuned(exp_cfg):
        return None, None
    path = Path(path) if path is not None else selection_path(config, name)
    if not path.is_file():
        raise ConfigError(f"experiments.{name}: its selection {path} is missing; build it with "
                          "`snakemake tune --config selections=run` (or run with --config selections=run)")
    try:
        selection = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"experiments.{name}: the selection {path} is not valid JSON ({err})") from None
    check_selection(name, exp_cfg, selection, path)
    return selection, path


def check_committed(config: dict) -> None:
    """With ``selections: committed``: every tuned experiment's committed selection exists and was made for
    its configuration (parse time, before any job runs)."""
    if config.get("selections", "committed") != "committed":
        return
    for name in config["experiments"]:
        read_selection(config, name)


def check_selection(name: str, exp_cfg: dict, selection: dict, path: str | Path) -> None:
    """A committed selection must be for this configuration of its experiment and cover its methods."""
    if selection.get("key") != selection_key(exp_cfg):
        raise ConfigError(f"experiments.{name}: the selection {path} was made for another configuration of this "
                          "experiment (its grid, criterion, problem, budget or parameters changed); rebuild it "
                          "with `snakemake tune --config selections=run` and copy results/tuning/<experiment>/"
                          "selection.json over it, or run with --config selections=run")
    missing = sorted(set(exp_cfg["methods"]) - set(selection.get("methods", {})))
    if missing:
        raise ConfigError(f"experiments.{name}: the selection {path} has no entry for method(s) {', '.join(missing)}")


def protocol(selection: dict | None) -> str:
    """One line saying how the experiment's parameters were chosen."""
    if selection is None:
        return "not tuned: the configured values (see the config's comments)"
    tuned_ = [lab for lab, m in selection["methods"].items() if "fixed" not in m]
    fixed = [lab for lab, m in selection["methods"].items() if "fixed" in m]
    crit = selection["criterion"]
    parts = []
    if tuned_:
        sizes = "/".join(str(len(selection["methods"][lab]["cells"])) for lab in tuned_)
        parts.append(f"tuned ({', '.join(tuned_)}; grids of {sizes} cells) on seeds {selection['seeds']} by "
                     f"{crit['statistic']} {crit['mode']} {crit['metric']}")
    if fixed:
        parts.append("fixed: " + "; ".join(f"{lab} ({selection['methods'][lab]['fixed']})" for lab in fixed))
    return "; ".join(parts)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def selection_markdown(selection: dict, source: str) -> list[str]:
    """The selection as Markdown lines: per method its grid, scores, choice and edge flag."""
    crit = selection["criterion"]
    lines = [f"Selection `{source}`: {crit['statistic']} over tuning seeds {selection['seeds']} of "
             f"{crit['metric']} ({crit['mode']}; a run's value: {crit['at']}, mean over phases); tuning budget "
             f"{selection['budget'] or 'as the figure'}.", "",
             "| method | grid | scores (cell: score) | choice | flag |", "|---|---|---|---|---|"]
    for label, m in selection["methods"].items():
        if "fixed" in m:
            lines.append(f"| {label} | fixed | | configured values | {m['fixed']} |")
            continue
        grid = "; ".join(f"{k} ∈ {{{', '.join(map(_fmt, v))}}}" for k, v in m["grid"].items()) or "(none)"
        scores = ", ".join(f"{', '.join(f'{k}={_fmt(v)}' for k, v in c['params'].items()) or c['cell']}: "
                           f"{_fmt(c['score'])}" for c in m["cells"])
        choice = ", ".join(f"{k}={_fmt(v)}" for k, v in m["params"].items()) or m["choice"]
        flag = "all cells diverged" if m.get("all_diverged") else \
            ("**grid edge**: " + ", ".join(m["edge"]) if m["edge"] else "")
        lines.append(f"| {label} | {grid} | {scores} | {choice} | {flag} |")
    return lines + [""]
