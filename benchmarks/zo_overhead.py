"""Overhead of the zeroth-order methods: time per function value inside a step against the bare
vectorized evaluation of the same number of points.

For every zeroth-order method of the ZOBA experiments (``zoba``, ``hf-zoba``, ``zmdsba``, ``pzobo``) on
their default problems (``config/config.yaml``: ``zoba_quadratic``, ``zoba_attack``) and the SOGD ZO
methods (``zo-sogd`` and the ``zo-gd`` family) on theirs (``sogd_regret``'s first case, ``sogd_attack``),
with the configured parameters: the median seconds of one step (after warm-up steps), divided by the
function values the step makes (its counts), against one ``Oracle.values`` call per level on random
points of the same number and shape (same dimensions, each point on as many samples as in the step).
The ratio is the method's overhead per value (direction draws, point layout, sequential loops, the
update). PZOBO makes no function values: its unit is the gradient and its bare call ``Oracle.grads_y``.

Run on demand (``bash benchmarks/run.sh`` or ``python benchmarks/zo_overhead.py``); prints a Markdown
table. ``--clock cpu`` reads the thread's CPU time instead of the wall clock (with one torch thread the
same quantity, but insensitive to other processes on a shared machine). The attack problems need
MNIST (``--seed-dirs``; else the stand-in mnist5k) and train their classifier once (cached);
``--skip-attack`` leaves them out.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bilevel import data
from bilevel.experiments.config import load_config, method_spec
from bilevel.experiments.jobs import build_problem
from bilevel.methods import registry
from bilevel.oracle import LEVELS, Oracle

#: (experiment, methods, phase of the method parameters, online?)
CASES = (
    ("zoba_quadratic", ("zoba", "hf-zoba", "zmdsba", "pzobo"), "optimization", False),
    ("zoba_attack", ("zoba", "hf-zoba", "zmdsba"), "optimization", False),
    ("sogd_regret", ("zo-sogd",), "online", True),
    ("sogd_attack", ("zo-sogd", "zo-sogd-adam", "zo-gd", "zo-adam", "zo-signsgd", "zo-conservsgd"), "online", True),
)


class RecordingOracle(Oracle):
    """An oracle that also remembers, per level, the sample width of the values it evaluated."""

    def __init__(self, problem):
        super().__init__(problem)
        self.widths: dict[str, int | None] = {}

    def _note(self, level: str, batch, per_point: bool) -> None:
        self.widths.setdefault(level, None if batch is None else int(batch.shape[-1] if per_point else batch.numel()))

    def value(self, level, x, y, batch=None):
        self._note(level, batch, per_point=False)
        return super().value(level, x, y, batch)

    def values(self, level, xs, ys, batch=None):
        self._note(level, batch, per_point=batch is not None and batch.ndim == 2)
        return super().values(level, xs, ys, batch)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = CLOCKS["wall"]


def _median_seconds(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def _random_points(problem, n: int, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    xs = x + 0.01 * torch.randn(n, x.numel(), generator=gen, dtype=x.dtype).to(x.device)
    ys = y + 0.01 * torch.randn(n, y.numel(), generator=gen, dtype=y.dtype).to(y.device)
    return xs, ys


def bare_seconds(problem, x, y, per_level: dict[str, int], widths: dict[str, int | None], unit: str,
                 warmup: int, repeats: int) -> float:
    """Median seconds of one vectorized call per level on ``per_level[level]`` random points."""
    gen = torch.Generator().manual_seed(0)
    calls = []
    for level, n in per_level.items():
        if n == 0:
            continue
        xs, ys = _random_points(problem, n, x, y, gen)
        size, width = problem.n_samples.get(level), widths.get(level)
        batch = None if size is None or width is None else torch.randint(size, (n, width), generator=gen).to(x.device)
        calls.append((level, xs, ys, batch))
    oracle = Oracle(problem)
    evaluate = oracle.grads_y if unit == "gradient" else oracle.values

    def run_all():
        for level, xs, ys, batch in calls:
            evaluate(level, xs, ys, batch)

    return _median_seconds(run_all, warmup, repeats)


def _per_level(before: dict, after: dict, kind: str, steps: int) -> dict[str, int]:
    return {lv: (after[f"{lv}_{kind}"] - before[f"{lv}_{kind}"]) // steps for lv in LEVELS}


def measure_offline(problem, method, warmup: int, repeats: int) -> dict:
    oracle = RecordingOracle(problem)
    state = method.init(oracle, problem.x0, problem.y0, 0)
    for _ in range(warmup):
        state = method.step(oracle, state)
    before = oracle.snapshot()
    step = _median_seconds(lambda: method.step(oracle, state), 0, repeats)
    unit = "gradient" if oracle.function_evals == 0 else "value"
    per_level = _per_level(before, oracle.snapshot(), "grad" if unit == "gradient" else "value", repeats)
    bare = bare_seconds(problem, state.x, state.y, per_level, oracle.widths, unit, 2, repeats)
    return {"unit": unit, "per_step": sum(per_level.values()), "step": step, "bare": bare}


def measure_online(stream, method, warmup: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    state = method.init(None, stream.x0, stream.y0, 0)
    window, times, counts, widths, problem = [], [], {}, {}, None
    for t in range(1, warmup + repeats + 1):
        problem = stream.round(t, gen)
        window = [*window, RecordingOracle(problem)][-method.rounds_needed():]
        t0 = clock()
        state = method.step(window, state, stream.project)
        if t > warmup:
            times.append(clock() - t0)
            for k, v in window[-1].counts.items():
                counts[k] = counts.get(k, 0) + v
            widths = {**window[-1].widths, **widths}
    per_level = {lv: counts[f"{lv}_value"] // repeats for lv in LEVELS}
    bare = bare_seconds(problem, state.x, state.y, per_level, widths, "value", 2, repeats)
    return {"unit": "value", "per_step": sum(per_level.values()), "step": statistics.median(times), "bare": bare}


def table(rows: list[dict]) -> str:
    lines = ["| experiment | method | unit | per step | step (ms) | step µs / unit | bare µs / unit | overhead |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        per_step = max(r["per_step"], 1)
        lines.append(f"| {r['experiment']} | {r['method']} | {r['unit']} | {r['per_step']} | {1e3 * r['step']:.2f} | "
                     f"{1e6 * r['step'] / per_step:.2f} | {1e6 * r['bare'] / per_step:.2f} | "
                     f"{r['step'] / r['bare']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the per-job setting of a laptop run)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--seed-dirs", nargs="*", default=["../shared/data"])
    parser.add_argument("--skip-attack", action="store_true", help="leave out zoba_attack and sogd_attack")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    torch.set_num_threads(args.threads)
    config = load_config()
    data.configure(seed_dirs=args.seed_dirs, stand_ins=config["data"].get("stand_ins"))
    rows = []
    for exp, labels, phase, online in CASES:
        if args.skip_attack and exp.endswith("_attack"):
            continue
        exp_cfg = config["experiments"][exp]
        overrides = next(iter((exp_cfg.get("cases") or {"": {}}).values()))
        problem = build_problem(exp_cfg, exp_cfg["seeds"][0], overrides=overrides)
        for label in labels:
            if label not in exp_cfg["methods"]:
                continue
            mname, params = method_spec(exp_cfg, label, phase)
            method = registry.make(mname, **params)
            measure = measure_online if online else measure_offline
            rows.append({"experiment": exp, "method": label, **measure(problem, method, args.warmup, args.repeats)})
            print(f"measured {exp} / {label}", flush=True)
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, median of "
          f"{args.repeats} steps")
    print()
    print(table(rows))
    per_value = {(r["experiment"], r["method"]): r["step"] / max(r["per_step"], 1) for r in rows}
    for exp in ("zoba_quadratic", "zoba_attack"):
        if (exp, "zmdsba") in per_value and (exp, "zoba") in per_value:
            ratio = per_value[(exp, "zmdsba")] / per_value[(exp, "zoba")]
            print(f"\n{exp}: ZMDSBA's time per value = {ratio:.2f} x ZOBA's (aim: <= 1.5)")


if __name__ == "__main__":
    main()
