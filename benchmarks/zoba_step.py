"""Function evaluations per second of one ZOBA step: batched (one vectorized call per level) against
Python loops (over directions, and over every single evaluation), at K = l1 = 100 directions and
b = b1 = 25 samples (the reference defaults), on the quadratic (p = d = 100) and on the black-box attack.

Every layout computes the same numbers with the same counts (tests/test_zeroth_order.py); only the
wall time differs. Run on demand: ``python benchmarks/zoba_step.py`` (writes
benchmarks/results/zoba_step.json); the README reports the ratios.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed-dirs", nargs="*", default=["../shared/data"])
    parser.add_argument("--out", default="benchmarks/results/zoba_step.json")
    args = parser.parse_args()
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
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
