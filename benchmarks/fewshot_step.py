"""Seconds per meta-step of each Figure 4 method on the few-shot problem, and the layouts that compute the
same numbers faster (ITD's split reverse pass, PZOBO's sequential paths), on the CPU and, when present,
the GPU (the GPU speed-up reported in the README and issue 8 comes from here).

Problem: 5-way 5-shot, Conv-4 (``--hidden`` maps) on ``--side``-pixel images of the ``glyphs`` stand-in
(always available, no files needed), meta-batch ``--meta-batch`` with 15 query images per class; inner
loops of 10 steps (Figure 4's default settings). Each timing is the median over ``--repeats`` meta-steps
after two warm-up steps, the device synchronized before each clock read (:class:`bilevel.run.Clock`).

Run on demand: ``python benchmarks/fewshot_step.py [--device cuda] [--paper]`` (``--paper``: the FC100
scale, Conv-4 with 64 maps on 32 x 32 colour, meta-batch 16). Prints a Markdown table and writes
``benchmarks/results/fewshot_step.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from bilevel import data, methods, problems
from bilevel.oracle import Oracle
from bilevel.results import device_description, write_json
from bilevel.run import Clock, warm_up

ADAM = {"outer_optimizer": "adam", "outer_lr": 0.003, "warm_start": False}
CONFIGS = {
    "itd (split reverse)": ("itd", {"inner_steps": 10, "inner_lr": 0.1, "reverse": "split", **ADAM}),
    "itd (joint reverse)": ("itd", {"inner_steps": 10, "inner_lr": 0.1, "reverse": "joint", **ADAM}),
    "aid-cg": ("aid", {"inner_steps": 10, "inner_lr": 0.1, "solver": "cg", "solver_steps": 10, **ADAM}),
    "f2ba": ("f2ba", {"inner_steps": 10, "lr_y": 0.01, "lr_z": 0.01, **ADAM}),
    "pzobo (sequential paths)": ("pzobo", {"inner_steps": 10, "inner_lr": 0.1, "n_directions": 1,
                                           "directions": "unit_per_tensor", "path_layout": "sequential", **ADAM}),
    "pzobo (vectorized paths)": ("pzobo", {"inner_steps": 10, "inner_lr": 0.1, "n_directions": 1,
                                           "directions": "unit_per_tensor", "path_layout": "vectorized", **ADAM}),
    "lfsba (refresh step)": ("lfsba", {"inner_steps": 10, "inner_lr": 0.1, "hessian": "hvp", "cubic_solver": "lanczos",
                                       "krylov_dim": 3, "cg_steps": 5, "M": 1000.0, "period": 1}),
}


def time_steps(name: str, params: dict, problem, device: str, repeats: int) -> float:
    method = methods.make(name, **params)
    oracle = Oracle(problem)
    clock = Clock(torch.device(device))
    state = method.init(oracle, problem.x0, problem.y0, seed=0)
    times = []
    for k in range(repeats + 2):
        problem.resample(k)
        t0 = clock()
        state = method.step(oracle, state)
        if k >= 2:  # the first steps pay one-off start-up costs (allocator, torch.func caches)
            times.append(clock() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper", action="store_true", help="FC100 scale: 64 maps, 32 x 32 colour, meta-batch 16")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="labels of CONFIGS to time (default: all)")
    args = parser.parse_args()
    data.configure(seed_dirs=[], stand_ins={"fc100": ["glyphs"]})
    warm_up()
    scale = dict(hidden=64, side=32, in_channels=3, meta_batch=16) if args.paper else \
        dict(hidden=args.hidden, side=args.side, in_channels=1, meta_batch=args.meta_batch)
    problem = problems.make("few_shot", dataset="fc100", backbone="conv4", n_way=5, k_shot=5, n_query=15,
                            eval_tasks=1, seed=0, device=args.device, **scale)
    rows = []
    for label, (name, params) in CONFIGS.items():
        if args.only and label not in args.only:
            continue
        seconds = time_steps(name, params, problem, args.device, args.repeats)
        rows.append({"method": label, "seconds_per_meta_step": seconds})
        print(f"| {label} | {seconds:.4f} |", flush=True)
    out = Path(__file__).parent / "results" / f"fewshot_step_{args.device.split(':')[0]}.json"
    write_json({"device": device_description(torch.device(args.device)), "scale": scale, "rows": rows}, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
