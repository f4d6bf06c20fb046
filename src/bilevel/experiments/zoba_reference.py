"""Our ZOBA, HF-ZOBA, ZMDSBA and SOBA against the ZOBA authors' own code, at equal iterations.

The references (``reference/zoba_authors/``, README there): the authors' JAX solvers run unchanged on two
stored quadratics of their benchopt generator (p = d = 20 and 100), the exact ‖∇Ψ(x_k)‖² every few
iterations, 3 seeds, under two parameter sets (``config`` A: their defaults; B: this artifact's
``zoba_quadratic`` steps). Here the same problems are loaded into our quadratic
(:func:`bilevel.problems.load_quadratic`, the traces' iteration 0 to 1e-12) and our methods run with the
same parameters, in two forms (:data:`FORMS`):

- ``"authors"``: the reference's choices where they differ from ours: ZMDSBA's outer step decayed as
  step/√(k+1), v re-initialised every iteration, Ĉ v as coded with the 2× cross bias
  (:data:`bilevel.experiments.zoba.ZMDSBA_AUTHORS_FORM`), and benchopt's sampler (``sampler="blocks"``: fixed
  blocks of consecutive samples, reshuffled each epoch, :mod:`bilevel.oracle`);
- ``"artifact"``: the forms the figures use: ZMDSBA consistent (§5.3, constant step, warm v, unbiased Ĉᵀv),
  i.i.d. mini-batches (``sampler="replacement"``).

ZOBA and HF-ZOBA are the same algorithm in both forms (only the sampler differs). Directions and samples
come from our generators, so only distributions can agree: the check is whether our median over seeds
lies in the authors' range over seeds widened by a stated factor (:func:`within`).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference" / "zoba_authors"
#: problem name of the traces -> file of the stored instance
PROBLEM_FILES = {"p20_d20": "upstream_p20_d20_rs2442.npz", "p100_d100": "upstream_p100_d100_rs2442.npz"}
#: the trace's method name -> ours
METHODS = {"zoba": "zoba", "hf-zoba": "hf-zoba", "zmdsba": "zmdsba", "soba": "soba"}
#: the authors' parameter names (``params`` column) -> ours, per method
PARAMETER_NAMES = {
    "zoba": {"step_size": "step_size", "outer_ratio": "outer_ratio"},
    "hf-zoba": {"step_size": "step_size", "outer_ratio": "outer_ratio"},
    "zmdsba": {"step_size": "outer_lr", "beta_0": "inner_lr", "gamma_0": "solver_lr"},
    "soba": {"step_size": "step_size", "outer_ratio": "outer_ratio"},
}
#: the trace's bookkeeping parameters, not the solver's
BOOKKEEPING = ("eval_freq", "random_state")
FORMS = ("authors", "artifact")


@dataclass(frozen=True)
class Case:
    """One (config, problem, method) of the traces."""

    config: str
    problem: str
    method: str


def case_rows(traces: pd.DataFrame, case: Case) -> pd.DataFrame:
    """The traces' rows of one case."""
    return traces[(traces.config == case.config) & (traces.problem == case.problem) & (traces.method == case.method)]


def load_traces(directory: Path | str = REFERENCE_DIR) -> pd.DataFrame:
    """The authors' traces (``traces.csv``)."""
    path = Path(directory) / "traces.csv"
    if not path.exists():
        raise FileNotFoundError(f"no reference traces at {path}")
    return pd.read_csv(path)


def problem_path(problem: str, directories: list[Path | str] = (REFERENCE_DIR,)) -> Path | None:
    """The stored instance of ``problem`` (``p20_d20``, ``p100_d100``) in the first directory holding it."""
    if problem not in PROBLEM_FILES:
        raise ValueError(f"unknown reference problem {problem!r}; known: {', '.join(PROBLEM_FILES)}")
    for directory in directories:
        path = Path(directory) / PROBLEM_FILES[problem]
        if path.exists():
            return path
    return None


def method_params(traces: pd.DataFrame, case: Case, form: str) -> tuple[str, dict]:
    """``(our method name, parameters)`` of a case: the authors' parameters as passed, renamed to ours, plus
    the form's choices (module docstring)."""
    from .zoba import ZMDSBA_AUTHORS_FORM

    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    rows = case_rows(traces, case)
    if rows.empty:
        raise ValueError(f"no reference trace for {case}")
    passed = json.loads(rows["params"].iloc[0])
    names = PARAMETER_NAMES[case.method]
    unknown = sorted(set(passed) - set(names) - set(BOOKKEEPING))
    if unknown:
        raise ValueError(f"{case}: no mapping for the authors' parameters {', '.join(unknown)}")
    params = {names[k]: v for k, v in passed.items() if k in names}
    if case.method == "zmdsba" and form == "authors":
        params.update(ZMDSBA_AUTHORS_FORM)
    return METHODS[case.method], params


def sampler_of(form: str) -> str:
    return "blocks" if form == "authors" else "replacement"


def eval_every(traces: pd.DataFrame, case: Case) -> int:
    rows = case_rows(traces, case)
    return int(json.loads(rows["params"].iloc[0])["eval_freq"])


def authors_values(traces: pd.DataFrame, case: Case, iteration: int) -> list[float]:
    """The authors' ‖∇Ψ(x_k)‖² at ``iteration``, one per seed that reached it."""
    rows = case_rows(traces, case)
    rows = rows[rows.iteration == iteration]
    return [float(v) for v in rows.sort_values("seed")["grad_norm2"]]


def common_last_iteration(traces: pd.DataFrame, case: Case) -> int:
    """The last iteration that every seed of the authors' runs reached."""
    rows = case_rows(traces, case)
    return int(rows.groupby("seed")["iteration"].max().min())


def run_ours(traces: pd.DataFrame, case: Case, form: str, iterations: int, seeds=(0, 1, 2),
             directories: list[Path | str] = (REFERENCE_DIR,), threads: int | None = None) -> pd.DataFrame:
    """Our runs of ``case`` in ``form`` for ``iterations`` on the stored problem: one row per (seed,
    evaluated iteration) with ``grad_norm2`` and the seconds of timed method work."""
    import torch

    from .. import methods, problems
    from ..run import run

    path = problem_path(case.problem, directories)
    if path is None:
        raise FileNotFoundError(f"the stored problem of {case.problem} is in none of {', '.join(map(str, directories))}")
    if threads is not None:
        torch.set_num_threads(threads)
    problem = problems.make("quadratic_file", path=str(path))
    name, params = method_params(traces, case, form)
    method = methods.make(name, **params)
    frames = []
    for seed in seeds:
        result = run(method, problem, max_iters=int(iterations), eval_every=eval_every(traces, case), seed=int(seed),
                     sampler=sampler_of(form))
        trace = result.trace[["step", "time", "hypergrad_norm2", "inner_distance", "function_evals", "status"]]
        frames.append(trace.rename(columns={"step": "iteration", "hypergrad_norm2": "grad_norm2"}).assign(seed=seed))
    return pd.concat(frames, ignore_index=True).assign(form=form, **vars(case))


def ours_at(runs: pd.DataFrame, iteration: int) -> list[float]:
    return [float(v) for v in runs[runs.iteration == iteration].sort_values("seed")["grad_norm2"]]


def within(ours: list[float], authors: list[float], factor: float) -> bool:
    """Our median in ``[min(authors)/factor, max(authors)·factor]``: the authors' seed range widened by
    ``factor`` on the log scale (the seeds' randomness differs: ours cannot be the same draws)."""
    if not ours or not authors:
        return False
    return min(authors) / factor <= statistics.median(ours) <= max(authors) * factor
