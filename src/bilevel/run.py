"""The run loop: budgets, timing, evaluation outside the timed region, divergence as a result.

Only ``method.init`` and ``method.step`` are timed; metrics are computed between clock reads with
uncounted, direct calls to the problem (never through the oracle). On a CUDA device the clock is
read after ``torch.cuda.synchronize()``. A non-finite iterate or metric ends the run with status
``"diverged"``; this is a result, not an exception. Episodic problems get their next meta-batch
(``problem.resample(k)``) before each step, untimed. Long runs can write a checkpoint every N steps
(:class:`Checkpoint`) and resume from it with identical results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .files import atomic_path
from .methods.base import Method, State
from .oracle import Oracle, totals
from .problems.base import BilevelProblem, MinimaxProblem

Metric = Callable[[BilevelProblem, torch.Tensor, torch.Tensor], float]
_PROGRESS_METRICS = ("hypergrad_norm2", "hypergrad_rel_error", "upper_objective")


#: what the runs' ``time`` column measures: ``"cpu"``, the process's CPU seconds (``time.process_time``: with
#: one torch thread, the method's own work, unchanged by other programs competing for the cores); ``"wall"``,
#: wall-clock seconds (``time.perf_counter``); ``"auto"``, CPU seconds on a CPU device and wall-clock
#: seconds on a GPU (whose kernels the CPU clock does not see), read after ``torch.cuda.synchronize()``
CLOCKS = ("auto", "cpu", "wall")
_DEFAULT_CLOCK = ["auto"]


def _clock_kind(kind: str) -> str:
    if kind not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {kind!r}")
    return kind


def set_default_clock(kind: str) -> None:
    """The clock of every :class:`Clock` built without an explicit kind in this process (the workflow sets
    its config key ``clock`` here)."""
    _DEFAULT_CLOCK[0] = _clock_kind(kind)


class Clock:
    """The timer of the timed regions (:data:`CLOCKS`); on a CUDA device it synchronizes before each read
    (kernels are asynchronous). ``kind`` None: the process default (:func:`set_default_clock`)."""

    def __init__(self, device: torch.device, kind: str | None = None):
        kind = _DEFAULT_CLOCK[0] if kind is None else _clock_kind(kind)
        if kind == "auto":
            kind = "wall" if device.type == "cuda" else "cpu"
        self.kind = kind
        self.read = time.process_time if kind == "cpu" else time.perf_counter
        self.sync = torch.cuda.synchronize if device.type == "cuda" else None

    def __call__(self) -> float:
        if self.sync is not None:
            self.sync()
        return self.read()


def _sq(t: torch.Tensor) -> float:
    return float(torch.dot(t.reshape(-1), t.reshape(-1)))


@torch.enable_grad()
def _grad_y(problem: BilevelProblem, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_y g(x, y) by reverse mode (plain autograd: no torch.func start-up cost in a short job)."""
    yy = y.detach().requires_grad_(True)
    return torch.autograd.grad(problem.call("g", x.detach(), yy), yy)[0]


def default_metrics(problem: BilevelProblem) -> dict[str, Metric]:
    """Metrics available for ``problem``: closed-form ones where known, plus ``f(x, y)`` and the inner residual.

    - ``hypergrad_norm2`` = ‖∇Ψ(x)‖², ``inner_distance`` = ‖y − y*(x)‖², ``hyperobjective`` = Ψ(x) (closed form);
    - ``value_gap`` = Ψ(x) − Ψ* when ``info["optimal_value"]`` is known; ``hyper_hessian_min_eig`` =
      λ_min(∇²Ψ(x)) when ``info["hyper_hessian"]`` is a callable;
    - ``upper_objective`` = f(x, y) and ``inner_grad_norm2`` = ‖∇_y g(x, y)‖² (full batch, always);
    - the problem's own metrics, ``info["metrics"]`` (name -> ``fn(problem, x, y)``, e.g. test accuracy).
    """
    metrics: dict[str, Metric] = {}
    cf = problem.closed_form
    if cf is not None and cf.hypergradient is not None:
        metrics["hypergrad_norm2"] = lambda p, x, y: _sq(cf.hypergradient(x))
    if cf is not None and cf.y_star is not None:
        metrics["inner_distance"] = lambda p, x, y: _sq(y - cf.y_star(x))
    if cf is not None and cf.value is not None:
        metrics["hyperobjective"] = lambda p, x, y: float(cf.value(x))
    if cf is not None and cf.value is not None and "optimal_value" in problem.info:
        optimum = float(problem.info["optimal_value"])
        metrics["value_gap"] = lambda p, x, y: float(cf.value(x)) - optimum
    if callable(problem.info.get("hyper_hessian")):
        metrics["hyper_hessian_min_eig"] = lambda p, x, y: float(torch.linalg.eigvalsh(p.info["hyper_hessian"](x))[0])
    metrics["upper_objective"] = lambda p, x, y: float(p.call("f", x, y))
    metrics["inner_grad_norm2"] = lambda p, x, y: _sq(_grad_y(p, x, y))
    metrics.update(problem.info.get("metrics", {}))
    return metrics


_WARMED_UP = False


def warm_up() -> None:
    """Pay torch's one-off start-up costs (loading ``torch.func``'s transforms: about 3 s on first use)
    once per process, before any timed region, so that the first run's clock measures the method only."""
    global _WARMED_UP
    if not _WARMED_UP:
        from torch import func as tf

        probe = torch.zeros(2, dtype=torch.float64)
        tf.vmap(tf.grad(lambda v: (v**3).sum()))(probe[None])
        tf.hessian(lambda v: (v**3).sum())(probe)
        _WARMED_UP = True


def check_objectives(problem: BilevelProblem) -> None:
    """One untimed, uncounted evaluation of ``f`` and ``g`` at ``(x0, y0)`` (full data): each must return a
    finite scalar tensor. Raises a ``ValueError`` naming the function and the fix instead of torch's message
    from deep inside a method."""
    for level in ("f", "g"):
        try:
            with torch.no_grad():
                value = problem.call(level, problem.x0, problem.y0)
        except (RuntimeError, IndexError, ValueError, TypeError) as err:
            raise ValueError(f"{level}(x0, y0) of problem {problem.name!r} failed: {err}. Check that x0 "
                             f"(shape {tuple(problem.x0.shape)}) and y0 (shape {tuple(problem.y0.shape)}) are the "
                             f"1-D sizes {level} expects") from None
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{level}(x0, y0) of problem {problem.name!r} must return a torch tensor, got "
                            f"{type(value).__name__}")
        if value.numel() != 1:
            raise ValueError(f"{level}(x0, y0) of problem {problem.name!r} must return a scalar (e.g. a sum or a mean), "
                             f"got a tensor of shape {tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{level}(x0, y0) of problem {problem.name!r} is {float(value)}: start from a point "
                             f"where both levels are finite")


_WARM_METHODS: set[type] = set()


def warm_method(method, first_step: Callable[[], None]) -> None:
    """Run ``first_step`` (one step of ``method`` on scratch state and oracles, untimed and discarded) the first
    time a method of this class runs in the process. The first call of a code path pays one-off costs (torch
    kernels, autograd and allocator set-up: up to ~1 ms per round of a ms-scale online run, measured), which
    would otherwise be charged to whichever seed of a job runs first; after it, every seed is timed alike."""
    if type(method) not in _WARM_METHODS:
        first_step()
        _WARM_METHODS.add(type(method))


def hypergradient_error(problem: BilevelProblem, state: State) -> float | None:
    """Relative error ‖ĥ − ∇Ψ(x)‖ / ‖∇Ψ(x)‖ of the method's last estimate, when both are known."""
    cf = problem.closed_form
    if state.hypergradient is None or cf is None or cf.hypergradient is None:
        return None
    x_at, estimate = state.hypergradient
    exact = cf.hypergradient(x_at)
    return float(torch.linalg.vector_norm(estimate - exact) / torch.linalg.vector_norm(exact))


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often :func:`run` saves its progress: ``path`` (a ``.pt`` file) every ``every`` steps.

    A run started with a checkpoint that exists resumes from it only when everything that determines the
    run's numbers is the same (:func:`run_identity`: the method and its parameters; the problem's name,
    sizes and construction -- every parameter of a registered problem, defaults included, and the
    checksums of the data it loaded; the seed, budgets and sampler; the package's source code, torch's
    version and thread count; and ``context``, anything else the caller's problem depends on). A
    checkpoint written under any other identity is discarded with a line naming what differs, and the run
    starts afresh. Saved: the method's
    state (iterates, ``aux``, generator state, step), the oracle counts, the timed seconds and the rows so
    far; files are written atomically and removed when the run ends. Resuming gives the same rows as an
    uninterrupted run, except the wall-time column, which adds the timed seconds of both parts.
    """

    path: str | Path
    every: int = 50
    context: dict | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"Checkpoint.every must be an integer >= 1, got {self.every!r}")


_CODE_DIGEST: list[str] = []


def code_digest() -> str:
    """sha256 of the package's Python sources (every ``bilevel/**/*.py``, by relative path): a checkpoint
    written by other code is never resumed."""
    if not _CODE_DIGEST:
        root = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        _CODE_DIGEST.append(digest.hexdigest())
    return _CODE_DIGEST[0]


def run_identity(method: Method, problem: BilevelProblem, seed: int, budgets: dict, context: dict | None = None) -> dict:
    """What determines a run's numbers, as plain JSON values (the resume key is its hash)."""
    identity = {"method": method.name, "params": method.params(), "problem": problem.name,
                "dims": [problem.dim_outer, problem.dim_inner], "construction": problem.info.get("construction"),
                "seed": seed, "budgets": budgets, "context": context, "code": code_digest(),
                "torch": torch.__version__, "threads": torch.get_num_threads()}
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def _run_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _differences(old, new, path: str = "") -> list[str]:
    """``"a.b: old -> new"`` for each leaf where two identities differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for key in sorted(set(old) | set(new))
                for line in _differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))]
    if old == new:
        return []
    shown = [json.dumps(v)[:60] for v in (old, new)]
    return [f"{path or 'identity'}: {shown[0]} -> {shown[1]}"]


def _encode(obj):
    """What :func:`torch.load` with ``weights_only=True`` reads back: generators as their state
    (``{"__generator__": state}``), named tuples (e.g. ``torch.linalg.eigh``'s result) as tuples."""
    if isinstance(obj, torch.Generator):
        return {"__generator__": obj.get_state()}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_encode(v) for v in obj)
    return obj


def _decode(obj, device: torch.device):
    """The inverse of :func:`_encode`, tensors moved to the problem's ``device`` (generators stay on the CPU)."""
    if isinstance(obj, dict):
        if set(obj) == {"__generator__"}:
            generator = torch.Generator()
            generator.set_state(obj["__generator__"])
            return generator
        return {k: _decode(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_decode(v, device) for v in obj)
    return obj.to(device) if isinstance(obj, torch.Tensor) else obj


def _save_checkpoint(path: Path, identity: dict, state: State, oracle: Oracle, elapsed: float,
                     rows: list[dict]) -> None:
    payload = {"key": _run_key(identity), "identity": json.dumps(identity, sort_keys=True),
               "x": state.x, "y": state.y, "k": state.k, "rng": state.rng.get_state(),
               "aux": _encode(state.aux), "diagnostics": state.diagnostics, "hypergradient": _encode(state.hypergradient),
               "counts": oracle.snapshot(), "sampler": oracle.sampler_state(), "elapsed": elapsed, "rows": rows}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, identity: dict, say) -> dict | None:
    """The saved payload when ``path`` holds a checkpoint of this very run; else None, after discarding a
    stale or unreadable file with a line saying why (``say``; also logged)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: start afresh
        _discard(path, f"is unreadable ({type(err).__name__})", say)
        return None
    if not isinstance(payload, dict) or payload.get("key") != _run_key(identity):
        try:
            saved = json.loads(payload["identity"])
        except (KeyError, TypeError, ValueError):
            saved = None
        what = _differences(saved, identity) if isinstance(saved, dict) else []
        why = ("was written under another configuration: " + "; ".join(what[:4])
               + (f" (and {len(what) - 4} more)" if len(what) > 4 else "")) if what else "belongs to another run"
        _discard(path, why, say)
        return None
    return payload


def _discard(path: Path, why: str, say) -> None:
    line = f"checkpoint {path} {why}; discarded, starting afresh"
    logging.getLogger(__name__).warning(line)
    if say:
        say(line)
    path.unlink(missing_ok=True)


@dataclass
class RunResult:
    """Outcome of :func:`run`: final iterates, the trace (one row per evaluation point), status."""

    x: torch.Tensor
    y: torch.Tensor
    trace: pd.DataFrame
    status: str
    counts: dict[str, int]
    state: State


def _finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _check_arguments(budgets: dict, eval_every, target) -> None:
    """``budgets``: name -> value (None: unset) of the four stopping budgets."""
    if all(value is None for value in budgets.values()):
        raise ValueError(f"run() needs a budget: {', '.join(budgets)}")
    for name, value in budgets.items():
        if value is not None and not value > 0:
            raise ValueError(f"run(): {name} must be > 0, got {value!r}")
    if target is not None and not (len(target) == 2 and target[1] > 0):
        raise ValueError(f"run(): target must be (metric, fraction > 0), got {target!r}")
    if not (isinstance(eval_every, int) and eval_every >= 1):
        raise ValueError(f"run(): eval_every must be an integer >= 1, got {eval_every!r}")


def _reporter(progress: bool | Callable[[str], None]) -> Callable[[str], None] | None:
    """``progress=True``: lines to stderr; a callable: lines to it; else None."""
    if progress is True:
        return lambda line: print(line, file=sys.stderr, flush=True)
    return progress or None


class _Loop:
    """The mutable parts of one run: the counting oracle, the clock and its timed seconds, the rows."""

    def __init__(self, method: Method, problem: BilevelProblem, metrics: dict[str, Metric], say,
                 sampler: str = "replacement"):
        self.method, self.problem, self.metrics, self.say = method, problem, metrics, say
        self.oracle = Oracle(problem, sampler)
        self.clock = Clock(problem.device)
        self.rows: list[dict] = []
        self.elapsed = 0.0

    def timed(self, fn, *args):
        """``fn(*args)``, its seconds added to the timed total."""
        t0 = self.clock()
        out = fn(*args)
        self.elapsed += self.clock() - t0
        return out

    def evaluate(self, state: State) -> bool:
        """Append one row; return False when a metric is not finite."""
        method, oracle = self.method, self.oracle
        x, y = method.outer(state), method.inner(state)
        with torch.no_grad():
            values = {name: fn(self.problem, x, y) for name, fn in self.metrics.items()}
        finite = all(math.isfinite(v) for v in values.values())
        err = hypergradient_error(self.problem, state)
        if err is not None:
            values["hypergrad_rel_error"] = err
        values.update(state.diagnostics)  # may be NaN by design (e.g. Neumann has no residual)
        counts = oracle.snapshot()
        spent = totals(counts)
        self.rows.append({"step": state.k, "time": self.elapsed, **counts, **spent, **values})
        if self.say:
            shown = " ".join(f"{k}={values[k]:.3e}" for k in _PROGRESS_METRICS if k in values)
            self.say(f"[{method.name}] step {state.k} time {self.elapsed:.2f}s "
                     f"calls {spent['oracle_calls']} values {spent['function_evals']} {shown}")
        return finite

    def restore(self, state: State, resume: dict, path: Path) -> None:
        """The state, counts, clock and rows of an interrupted run."""
        device = self.problem.device
        state.x, state.y, state.k = resume["x"].to(device), resume["y"].to(device), resume["k"]
        state.rng.set_state(resume["rng"])
        state.aux, state.diagnostics = _decode(resume["aux"], device), resume["diagnostics"]
        state.hypergradient = _decode(resume["hypergradient"], device)
        self.oracle.counts.update(resume["counts"])
        self.oracle.load_sampler_state(resume.get("sampler", {}))
        self.elapsed, self.rows[:] = resume["elapsed"], resume["rows"]
        if self.say:
            self.say(f"[{self.method.name}] resumed from {path} at step {state.k} ({self.elapsed:.2f}s timed)")

    def spent(self, state: State, budgets: dict, target, threshold) -> bool:
        """Whether a budget (or the target) stops the run before the next step: ``max_oracle_calls`` on
        the oracle's ``oracle_calls``, ``max_function_evals`` on its ``function_evals`` (one accounting,
        :func:`bilevel.oracle.totals`)."""
        if threshold is not None and self.rows[-1].get(target[0], math.inf) <= threshold:
            return True
        used = {"max_iters": state.k, "max_seconds": self.elapsed,
                **{f"max_{name}": value for name, value in self.oracle.totals().items()}}
        return any(limit is not None and used[name] >= limit for name, limit in budgets.items())

    def result(self, state: State, status: str) -> RunResult:
        trace = pd.DataFrame(self.rows)
        trace.insert(0, "status", status)
        return RunResult(x=self.method.outer(state), y=self.method.inner(state), trace=trace, status=status,
                         counts=self.oracle.snapshot(), state=state)


def _open_checkpoint(checkpoint: Checkpoint | None, method: Method, problem: BilevelProblem, seed: int,
                     budgets: dict, say) -> tuple[Path | None, dict | None, dict | None]:
    """``(path, run identity, saved payload or None)`` of the run's checkpoint (all None without one)."""
    if checkpoint is None:
        return None, None, None
    path = Path(checkpoint.path)
    identity = run_identity(method, problem, seed, budgets, checkpoint.context)
    return path, identity, _load_checkpoint(path, identity, say)


def _target_threshold(target, rows: list[dict], metrics: dict) -> float | None:
    """``fraction`` times the target metric's value at step 0 (None without a target)."""
    if target is None:
        return None
    if target[0] not in rows[0]:
        raise ValueError(f"run(): target metric {target[0]!r} is not measured; metrics: {', '.join(metrics)}")
    return target[1] * rows[0][target[0]]


def run(
    method: Method,
    problem: BilevelProblem,
    *,
    max_iters: int | None = None,
    max_oracle_calls: int | None = None,
    max_function_evals: int | None = None,
    max_seconds: float | None = None,
    eval_every: int = 1,
    seed: int = 0,
    metrics: dict[str, Metric] | None = None,
    progress: bool | Callable[[str], None] = False,
    target: tuple[str, float] | None = None,
    checkpoint: Checkpoint | None = None,
    sampler: str = "replacement",
) -> RunResult:
    """Run ``method`` on ``problem`` until a budget is spent.

    Budgets (at least one), in the units of the trace's columns (:func:`bilevel.oracle.totals`):
    ``max_iters`` outer iterations, ``max_oracle_calls`` derivative oracle calls (gradients +
    second-order products + ``HESSIAN_WEIGHT`` per full Hessian: the ``oracle_calls`` column),
    ``max_function_evals`` function values (``function_evals``), ``max_seconds`` of timed method work.
    Budgets are checked after each step, so the last step may overshoot by at most its own cost.
    Metrics are evaluated at step 0, every ``eval_every`` steps and at the last step. ``progress`` prints a line per
    evaluation (``True`` = stderr, or a callable taking the line). ``target = (metric, fraction)``
    also stops the run (status ``completed``) at the first evaluation where ``metric`` is at most
    ``fraction`` times its value at step 0 (e.g. evaluations to a relative tolerance). ``sampler`` is the
    mini-batch law of every stochastic method (:data:`bilevel.oracle.SAMPLERS`: ``"replacement"``, i.i.d.
    as the analyses assume; ``"epoch"``, random reshuffling; ``"blocks"``, the ZOBA authors' benchopt
    sampler).
    """
    limits = {"max_iters": max_iters, "max_oracle_calls": max_oracle_calls, "max_function_evals": max_function_evals,
              "max_seconds": max_seconds}
    _check_arguments(limits, eval_every, target)
    if method.problem_kind == "online":
        raise TypeError(f"{method.name} is an online method: run it on a stream with bilevel.online.run_online")
    if method.problem_kind == "minimax" and not isinstance(problem, MinimaxProblem):
        raise TypeError(f"{method.name} is a minimax method: run it on a bilevel.MinimaxProblem(f, x0, y0) "
                        f"(min_x max_y f), got a {type(problem).__name__}")
    if not isinstance(problem, (BilevelProblem, MinimaxProblem)):
        raise TypeError(f"run(): problem must be a bilevel.BilevelProblem or MinimaxProblem, got {type(problem).__name__}")
    if isinstance(problem, MinimaxProblem):
        problem = problem.as_bilevel()
    metrics = default_metrics(problem) if metrics is None else metrics
    say = _reporter(progress)
    if method.uses_torch_func:
        warm_up()
    loop = _Loop(method, problem, metrics, say, sampler)
    budgets = {"max_iters": max_iters, "max_oracle_calls": max_oracle_calls, "max_seconds": max_seconds,
               "eval_every": eval_every, "target": target}
    budgets.update(max_function_evals=max_function_evals, sampler=sampler)
    ckpt_path, identity, resume = _open_checkpoint(checkpoint, method, problem, seed, budgets, say)
    if problem.resample is not None:
        problem.resample(0)
    if problem.info.get("construction") is None:  # a user's problem (the registered ones are tested)
        check_objectives(problem)

    def scratch_step():  # its own oracle, state and generator: the run's draws are untouched
        scratch = Oracle(problem, sampler)
        method.step(scratch, method.init(scratch, problem.x0, problem.y0, seed))
        if problem.resample is not None:
            problem.resample(0)

    warm_method(method, scratch_step)
    state = loop.timed(method.init, loop.oracle, problem.x0, problem.y0, seed)
    if resume is None:
        loop.evaluate(state)
    else:
        loop.restore(state, resume, ckpt_path)
    last_eval = loop.rows[-1]["step"]
    threshold = _target_threshold(target, loop.rows, metrics)
    status = "completed"
    while not loop.spent(state, limits, target, threshold):
        if problem.resample is not None:
            problem.resample(state.k)
        state = loop.timed(method.step, loop.oracle, state)
        if not _finite(method.outer(state), method.inner(state)):
            status = "diverged"
            loop.evaluate(state)
            last_eval = state.k
            break
        if state.k % eval_every == 0:
            last_eval = state.k
            if not loop.evaluate(state):
                status = "diverged"
                break
        if checkpoint is not None and state.k % checkpoint.every == 0:
            _save_checkpoint(ckpt_path, identity, state, loop.oracle, loop.elapsed, loop.rows)
    if status == "completed" and last_eval != state.k and not loop.evaluate(state):
        status = "diverged"
    if checkpoint is not None:
        ckpt_path.unlink(missing_ok=True)
    return loop.result(state, status)
