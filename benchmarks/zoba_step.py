"""Function evaluations per second of one ZOBA step: batched (one vectorized call per level) against
Python loops (over directions, and over every single evaluation), at K = l1 = 100 directions and
b = b1 = 25 samples (the reference defaults), on the quadratic (p = d = 100) and on the black-box attack.

Every layout computes the same numbers with the same counts (tests/test_zeroth_order.py); only the
wall time differs. Run on demand: ``python benchmarks/zoba_step.py`` (writes
benchmarks/results/zoba_step.json); the README reports the ratios.

``--iteration``: one iteration of ZOBA and HF-ZOBA with the reference defaults (l1 = 100, b1 = 25, l2 = 1,
b2 = 10: 10,055 / 10,080 function values), SINGLE-THREADED, on the quadratic (``seed=2442``) at p = d = 20
and 100, float64 (float32 for information): milliseconds of CPU time per iteration (``time.process_time``,
insensitive to other processes on a shared machine; median and minimum of interleaved rounds), against
the "bare" cost of the same points — the g- and f-points and sample indices of one recorded iteration
evaluated by ``torch.func.vmap`` of ``problem.g`` / ``problem.f`` in one call each (``bare_vmap``), and
through ``Oracle.values`` (``bare_oracle``: the problem's fused evaluation where it has one, else vmap in
chunks) — and the ratios. Writes benchmarks/results/zoba_iteration.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

import bilevel
from bilevel.methods.base import State
from bilevel.oracle import Oracle


def problems(dataset_seed_dirs):
    from bilevel import data

    data.configure(seed_dirs=dataset_seed_dirs, stand_ins={"mnist": "mnist5k"})
    yield "quadratic (p = d = 100)", bilevel.problems.make("quadratic", dim_inner=100, dim_outer=100, seed=1)
    yield "attack (p = d = 196, MLP queries)", bilevel.problems.make("blackbox_attack", dataset="mnist", seed=1)


def time_steps(method, problem, repeats: int) -> tuple[float, int]:
    """Median seconds of one step (after a warm-up step) and evaluations per step."""
    oracle = Oracle(problem)
    state: State = method.init(oracle, problem.x0, problem.y0, 0)
    method.step(oracle, state)
    times, before = [], oracle.function_evals
    for _ in range(repeats):
        t0 = time.perf_counter()
        method.step(oracle, state)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (oracle.function_evals - before) // repeats


class _RecordingOracle(Oracle):
    """Keeps a copy of the points of every ``values`` call (level, xs, ys, batch)."""

    def __init__(self, problem):
        super().__init__(problem)
        self.calls: list[tuple] = []
        self.recording = True

    def values(self, level, xs, ys, batch=None):
        if self.recording:
            self.calls.append((level, xs.clone(), ys.clone(), None if batch is None else batch.clone()))
        return super().values(level, xs, ys, batch)


def _cpu_ms(fn, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return times


def iteration(rounds: int, per_round: int, dims=(20, 100), dtypes=("float64", "float32")) -> dict:
    """ms per iteration of ZOBA / HF-ZOBA and of the bare evaluation of the same points (module docstring)."""
    from torch import func as tf

    torch.set_num_threads(1)
    results = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for p in dims:
            problem = bilevel.problems.make("quadratic", dim_inner=p, dim_outer=p, seed=2442, dtype=dtype)
            items = {}
            for name in ("zoba", "hf-zoba"):
                method = bilevel.methods.make(name)
                oracle = _RecordingOracle(problem)
                state = method.init(oracle, problem.x0, problem.y0, 0)
                for _ in range(3):  # warm-up; the last one's points are the bare calls' points
                    oracle.calls.clear()
                    method.step(oracle, state)
                calls, before = list(oracle.calls), oracle.function_evals
                oracle.recording = False
                method.step(oracle, state)
                evals = oracle.function_evals - before
                fns = {"f": problem.f, "g": problem.g}

                def bare_vmap(calls=calls, fns=fns):
                    for level, xs, ys, batch in calls:
                        tf.vmap(fns[level], in_dims=(0, 0, None if batch is None or batch.ndim == 1 else 0))(
                            xs, ys, batch)

                plain = Oracle(problem)

                def bare_oracle(calls=calls, plain=plain):
                    for level, xs, ys, batch in calls:
                        plain.values(level, xs, ys, batch)

                def step(method=method, oracle=oracle, state=state):
                    for _ in range(per_round):
                        method.step(oracle, state)

                items[name] = (step, per_round, evals)
                items[f"{name}:bare_vmap"] = (bare_vmap, 1, evals)
                items[f"{name}:bare_oracle"] = (bare_oracle, 1, evals)
            times = {key: [] for key in items}
            for fn, _, _ in items.values():
                fn()
            for _ in range(rounds):  # interleaved, so that a busy moment of the machine hits every item alike
                for key, (fn, count, _) in items.items():
                    times[key] += [t / count for t in _cpu_ms(fn, 1)]
            row = {}
            for key, (_, _, evals) in items.items():
                ts = sorted(times[key])
                row[key] = {"ms_median": statistics.median(ts), "ms_min": ts[0], "evaluations": evals}
            for name in ("zoba", "hf-zoba"):
                for bare in ("bare_vmap", "bare_oracle"):
                    for stat in ("median", "min"):
                        row[name][f"ratio_to_{bare}_{stat}"] = (row[name][f"ms_{stat}"]
                                                                / row[f"{name}:{bare}"][f"ms_{stat}"])
            label = f"{dtype_name} p=d={p}"
            results[label] = row
            for name in ("zoba", "hf-zoba"):
                r, bv, bo = row[name], row[f"{name}:bare_vmap"], row[f"{name}:bare_oracle"]
                print(f"{label:18s} {name:8s} {r['ms_median']:7.2f} ms (min {r['ms_min']:6.2f})  bare vmap "
                      f"{bv['ms_median']:6.2f} (min {bv['ms_min']:6.2f})  bare oracle {bo['ms_median']:6.2f} "
                      f"(min {bo['ms_min']:6.2f})  ratio to vmap {r['ratio_to_bare_vmap_median']:.2f} "
                      f"(min {r['ratio_to_bare_vmap_min']:.2f})  evaluations {r['evaluations']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-dirs", nargs="*", default=["../shared/data"])
    parser.add_argument("--out", default=None, help="default: benchmarks/results/zoba_step.json, or "
                        "benchmarks/results/zoba_iteration.json with --iteration")
    parser.add_argument("--iteration", action="store_true", help="ms per iteration against the bare evaluation")
    parser.add_argument("--rounds", type=int, default=40, help="--iteration: interleaved rounds")
    parser.add_argument("--per-round", type=int, default=5, help="--iteration: iterations per round")
    args = parser.parse_args()
    if args.iteration:
        out = args.out or "benchmarks/results/zoba_iteration.json"
        report = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": 1,
                  "clock": "process_time", "rounds": args.rounds, "per_round": args.per_round,
                  "results": iteration(args.rounds, args.per_round)}
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out, "w") as fh:
            json.dump(report, fh, indent=1)
        return
    args.out = args.out or "benchmarks/results/zoba_step.json"
    torch.set_num_threads(torch.get_num_threads())
    report = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "l1": 100, "b1": 25, "results": {}}
    for label, problem in problems(args.seed_dirs):
        row = {}
        for mode in ("batched", "per-direction", "per-point"):
            seconds, evals = time_steps(bilevel.methods.make("zoba", evaluation=mode), problem, args.repeats)
            row[mode] = {"seconds_per_step": seconds, "evaluations_per_step": evals,
                         "evaluations_per_second": evals / seconds}
            print(f"{label:36s} {mode:14s} {seconds * 1e3:9.1f} ms/step {evals / seconds:12.0f} evals/s", flush=True)
        for loop in ("per-direction", "per-point"):
            row[f"speedup_vs_{loop}"] = row[loop]["seconds_per_step"] / row["batched"]["seconds_per_step"]
        report["results"][label] = row
        print(f"{label}: batched is {row['speedup_vs_per-direction']:.1f}x a loop over directions and "
              f"{row['speedup_vs_per-point']:.1f}x a loop over evaluations")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
