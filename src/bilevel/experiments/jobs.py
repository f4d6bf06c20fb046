"""Job kinds shared by experiments: a hypergradient-accuracy sweep, optimization runs (one per case),
online runs (one per case) and online sweeps (one per grid cell).

Each returns schema rows (:mod:`bilevel.results`) and takes ``(exp_name, exp_cfg, label, seed, device,
progress)`` first, so that :func:`case_runs`, :func:`online_runs`, :func:`grid_runs` and
:func:`optimization_run` serve as an :class:`~.base.Experiment`'s ``run_job`` as they are. The job seed
selects the problem instance (as ``random_state`` does upstream) and seeds the run's generator.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..results import tidy
from .config import ConfigError, grid_cells, method_spec

# The methods, problems and run loops (torch) are imported inside the job functions: the workflow's
# bookkeeping jobs (aggregates, figures, claims) import the experiment definitions, which name these
# functions, without loading torch.


def build_problem(exp_cfg: dict, seed: int, device: str = "cpu", overrides: dict | None = None):
    """The experiment's problem instance for ``seed`` (float64 synthetic problems); ``overrides``
    replace problem parameters (e.g. the initial point of a figure panel)."""
    from .. import problems as problem_registry

    prob = exp_cfg["problem"]
    params = {**prob.get("params", {}), **(overrides or {})}
    params["seed"] = seed
    if device != "cpu":
        params["device"] = device
    return problem_registry.make(prob["name"], **params)


def _labels(exp_name, phase, problem, label, mname, params, seed) -> dict:
    return {"experiment": exp_name, "phase": phase, "problem": problem.name, "dataset": problem.info.get("dataset", ""),
            "stand_in": problem.info.get("stand_in_for") or "", "method": label,
            "method_name": mname, "params": params, "seed": seed}


def hypergradient_sweep(exp_name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu") -> pd.DataFrame:
    """Accuracy of one hypergradient at the initial point against the inner budget.

    For every budget B in ``exp_cfg["hypergradient"]["budgets"]``, the parameters named in the
    method's ``sweep`` list (default ``["inner_steps"]``) are set to B, one hypergradient is computed
    from the cold start ``y0`` with a fresh counting oracle, and the row records the relative error
    ``‖ĥ − ∇Ψ(x0)‖/‖∇Ψ(x0)‖``, ``‖y_T − y*(x0)‖²``, the oracle counts and the time (minimum over
    ``timing_repeats`` identical computations, to damp timer noise).
    """
    import torch

    from .. import methods as method_registry
    from ..methods.base import HypergradientMethod
    from ..oracle import Oracle
    from ..run import Clock

    section = exp_cfg["hypergradient"]
    problem = build_problem(exp_cfg, seed, device)
    cf = problem.closed_form
    if cf is None or cf.hypergradient is None:
        raise ConfigError(f"experiments.{exp_name}.problem: the hypergradient sweep needs a closed-form hypergradient")
    mname, params = method_spec(exp_cfg, label)
    sweep_params = exp_cfg["methods"][label].get("sweep", ["inner_steps"])
    x0 = problem.x0
    exact = cf.hypergradient(x0)
    y_star = cf.y_star(x0)
    clock = Clock(problem.device)
    trace = []
    # Warm-up (untimed, uncounted): the first autograd call of a process pays a one-off set-up cost.
    warm = method_registry.make(mname, **{**params, **dict.fromkeys(sweep_params, 1)})
    if isinstance(warm, HypergradientMethod):
        warm.hypergradient(Oracle(problem), x0, problem.y0, warm.init(Oracle(problem), x0, problem.y0, seed))
    for budget in section["budgets"]:
        method = method_registry.make(mname, **{**params, **dict.fromkeys(sweep_params, int(budget))})
        if not isinstance(method, HypergradientMethod):
            raise ConfigError(f"experiments.{exp_name}.methods.{label}: {mname} does not form hypergradients")
        best = math.inf
        for _ in range(int(section.get("timing_repeats", 1))):
            oracle = Oracle(problem)
            state = method.init(oracle, x0, problem.y0, seed)
            t0 = clock()
            estimate, y = method.hypergradient(oracle, x0, problem.y0, state)
            best = min(best, clock() - t0)
        finite = bool(torch.isfinite(estimate).all() and torch.isfinite(y).all())
        trace.append({
            "step": int(budget), "time": best, **oracle.snapshot(), "oracle_calls": oracle.oracle_calls,
            "function_evals": oracle.function_evals,
            "hypergrad_rel_error": float(torch.linalg.vector_norm(estimate - exact) / torch.linalg.vector_norm(exact)),
            "inner_distance": float(torch.sum((y - y_star) ** 2)),
            "status": "completed" if finite else "diverged",
        })
    labels = _labels(exp_name, "hypergradient", problem, label, mname, method_registry.make(mname, **params).params(),
                     seed)
    return tidy(pd.DataFrame(trace), **labels)


def optimization_run(exp_name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu",
                     progress=False, phase: str = "optimization", overrides: dict | None = None,
                     checkpoint_dir=None) -> pd.DataFrame:
    """Outer optimization with :func:`bilevel.run` under the ``optimization`` section's budget and
    optional ``target`` (rows labelled ``phase``; ``overrides`` replace problem parameters). A method's
    own ``budget`` entry overrides the section's budget keys (e.g. more iterations for a cheaper method,
    so that every method gets a comparable time). With ``checkpoint_dir``, the run saves
    ``<checkpoint_dir>/<phase>.pt`` every ``checkpoint_every`` steps (default 50) and resumes from it. The
    section's ``sampler`` (default ``replacement``) is the mini-batch law of every method of the figure."""
    from .. import methods as method_registry
    from ..run import Checkpoint, run

    section = {**exp_cfg["optimization"], **exp_cfg["methods"][label].get("budget", {})}
    problem = build_problem(exp_cfg, seed, device, overrides)
    mname, params = method_spec(exp_cfg, label, "optimization")
    method = method_registry.make(mname, **params)
    target = section.get("target")
    checkpoint = None if checkpoint_dir is None else \
        Checkpoint(f"{checkpoint_dir}/{phase}.pt", int(section.get("checkpoint_every", 50)))
    result = run(method, problem, max_iters=section.get("max_iters"), max_oracle_calls=section.get("max_oracle_calls"),
                 max_function_evals=section.get("max_function_evals"), max_seconds=section.get("max_seconds"),
                 eval_every=section.get("eval_every", 1), seed=seed,
                 progress=progress, target=None if target is None else (target["metric"], target["fraction"]),
                 checkpoint=checkpoint, sampler=section.get("sampler", "replacement"))
    return tidy(result.trace, **_labels(exp_name, phase, problem, label, mname, method.params(), seed))


def case_runs(exp_name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu",
              progress=False, checkpoint_dir=None) -> pd.DataFrame:
    """One :func:`optimization_run` per entry of the experiment's ``cases`` (named problem-parameter
    overrides, e.g. dataset × noise rate), each labelled with its case name as the phase; a single
    ``optimization`` phase when there are no cases."""
    cases = exp_cfg.get("cases") or {"optimization": {}}
    rows = pd.concat([optimization_run(exp_name, exp_cfg, label, seed, device, progress=progress, phase=case,
                                       overrides=overrides, checkpoint_dir=checkpoint_dir)
                      for case, overrides in cases.items()], ignore_index=True)
    if checkpoint_dir is not None and Path(checkpoint_dir).is_dir() and not any(Path(checkpoint_dir).iterdir()):
        Path(checkpoint_dir).rmdir()  # every case completed: nothing left to resume
    return rows


def online_runs(exp_name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu",
                progress=False) -> pd.DataFrame:
    """One :func:`bilevel.online.run_online` per case (or one ``online`` phase) for ``online.rounds``
    rounds of the experiment's stream; the seed draws the oracle noise and the method's randomness."""
    from .. import methods as method_registry
    from ..online import run_online

    section = {**exp_cfg["online"], **exp_cfg["methods"][label].get("budget", {})}
    mname, params = method_spec(exp_cfg, label, "online")
    method = method_registry.make(mname, **params)
    frames = []
    for case, overrides in (exp_cfg.get("cases") or {"online": {}}).items():
        stream = build_problem(exp_cfg, seed, device, overrides)
        result = run_online(method, stream, int(section["rounds"]), seed=seed,
                            eval_every=int(section.get("eval_every", 1)), progress=progress)
        frames.append(tidy(result.trace, **_labels(exp_name, case, stream, label, mname, method.params(), seed)))
    return pd.concat(frames, ignore_index=True)


def grid_runs(exp_name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu",
              progress=False) -> pd.DataFrame:
    """One online run per cell of the method's ``grid`` (its parameters over the method's own ones), each
    labelled with the cell's name as the phase (the appendix sweeps of the SOGD paper)."""
    from .. import methods as method_registry
    from ..online import run_online

    section = {**exp_cfg["online"], **exp_cfg["methods"][label].get("budget", {})}
    mname, base = method_spec(exp_cfg, label, "online")
    stream = build_problem(exp_cfg, seed, device)
    frames = []
    for cell, overrides in grid_cells(exp_cfg["methods"][label]["grid"]):
        method = method_registry.make(mname, **{**base, **overrides})
        result = run_online(method, stream, int(section["rounds"]), seed=seed,
                            eval_every=int(section.get("eval_every", 1)), progress=progress)
        frames.append(tidy(result.trace, **_labels(exp_name, cell, stream, label, mname, method.params(), seed)))
    return pd.concat(frames, ignore_index=True)
