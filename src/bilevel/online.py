"""The online loop: one round per step, the bilevel local regret computed exactly where it is known.

``specs/sogd.md`` §2.1, eq. (2): ``BL-Reg_T = Σ_t ‖P_{X,α_t}(x_t; ∇F_t(x_t))‖²`` with the projected
gradient ``P_{X,α}(x; p) = (x − Π_X[x − α p]) / α`` (= ‖∇F_t(x_t)‖² when X = R^d). Round t: the stream
draws the round's problem (its noise from the run's data generator, seeded ``seed + 1``), the regret
term is evaluated at the decision ``x_t`` played in that round (before the method sees round t's data;
uncounted, untimed), then the method's step is timed. Rows every ``eval_every`` rounds and at the last
one carry the cumulative method time (also as the metric ``cumulative_time``), the cumulative regret,
its average, the round's term, the method's hypergradient tracking error ``‖d^x_t − ∇F_t(x_t)‖²``, the
stream's own metrics (``stream.metrics``, at the iterate after round
t's step: e.g. the accuracy under attack of the current perturbation) and the oracle counts of all rounds
so far, totalled as by :func:`bilevel.run` (:func:`bilevel.oracle.totals`: ``oracle_calls`` derivative
calls, ``function_evals`` values).
"""

from __future__ import annotations

import math
from collections import deque

import pandas as pd
import torch

from .methods.online import OnlineMethod
from .oracle import COUNT_KEYS, Oracle, totals
from .problems.online import BilevelStream
from .run import Clock, RunResult, warm_method, warm_up


def projected_gradient(stream: BilevelStream, x: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
    """``P_{X,α}(x; p) = (x − Π_X[x − α p]) / α``."""
    return (x - stream.project(x - alpha * grad)) / alpha


def _outer_step(method: OnlineMethod, t: int) -> float:
    """The method's outer step α_t of round t (1 for a method without one, e.g. OGD)."""
    if hasattr(method, "steps"):
        return float(method.steps(t)["alpha"])
    return float(getattr(method, "alpha", 1.0))


def run_online(method: OnlineMethod, stream: BilevelStream, rounds: int, *, seed: int = 0, eval_every: int = 1,
               regret_alpha: float | None = None, progress=False) -> RunResult:
    """Run ``method`` for ``rounds`` rounds of ``stream``.

    ``regret_alpha`` is the α of the projected gradient in the regret (default: the method's outer step
    α_t of the round, 1 for a method without one; irrelevant when X = R^d).
    """
    if method.problem_kind != "online":
        raise TypeError(f"run_online needs an online method (problem_kind 'online'), got {method.name!r} "
                        f"(problem_kind {method.problem_kind!r})")
    if rounds < 1 or eval_every < 1:
        raise ValueError(f"run_online: rounds and eval_every must be >= 1, got {rounds}, {eval_every}")
    if method.uses_torch_func:
        warm_up()
    data = torch.Generator().manual_seed(int(seed) + 1)
    window: deque[Oracle] = deque(maxlen=method.rounds_needed())
    retired = dict.fromkeys(COUNT_KEYS, 0)
    clock = Clock(stream.x0.device)
    warm_method(method, lambda: method.step([Oracle(stream.round(1, torch.Generator().manual_seed(int(seed) + 7)))],
                                            method.init(None, stream.x0, stream.y0, seed), stream.project))
    state = method.init(None, stream.x0, stream.y0, seed)
    elapsed, regret, rows, status = 0.0, 0.0, [], "completed"
    for t in range(1, rounds + 1):
        if len(window) == window.maxlen:
            for k, v in window[0].snapshot().items():
                retired[k] += v
        window.append(Oracle(stream.round(t, data)))
        x_t = state.x
        exact = stream.hypergradient(t, x_t)
        term = math.nan
        if exact is not None:
            alpha = regret_alpha or _outer_step(method, t)
            term = float(torch.sum(projected_gradient(stream, x_t, exact, alpha) ** 2))
            regret += term
        t0 = clock()
        state = method.step(list(window), state, stream.project)
        elapsed += clock() - t0
        finite = bool(torch.isfinite(state.x).all() and torch.isfinite(state.y).all())
        if t % eval_every == 0 or t == rounds or not finite:
            counts = {k: retired[k] + sum(o.counts[k] for o in window) for k in COUNT_KEYS}
            row = {"step": t, "time": elapsed, "cumulative_time": elapsed, **counts, **totals(counts), "regret": regret,
                   "average_regret": regret / t, "regret_term": term}
            if exact is not None and state.hypergradient is not None:
                row["hypergrad_tracking_error"] = float(torch.sum((state.hypergradient[1] - exact) ** 2))
            if callable(stream.info.get("y_star")):
                row["inner_distance"] = float(torch.sum((state.y - stream.info["y_star"](t, state.x)) ** 2))
            with torch.no_grad():
                row.update({name: float(fn(t, state.x, state.y)) for name, fn in stream.metrics.items()})
            rows.append(row)
            if progress:
                print(f"[{method.name}] round {t} time {elapsed:.2f}s regret {regret:.4g}", flush=True)
        if not finite:
            status = "diverged"
            break
    trace = pd.DataFrame(rows)
    trace.insert(0, "status", status)
    counts = {k: retired[k] + sum(o.counts[k] for o in window) for k in COUNT_KEYS}
    return RunResult(x=state.x, y=state.y, trace=trace, status=status, counts=counts, state=state)
