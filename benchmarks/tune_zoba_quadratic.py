"""Step-size grid of specs/zoba.md Z-3 for the default-config quadratic (p = d = 20), on a tuning seed.

Selection rule (recorded in config/config.yaml): per method, the grid point with the smallest
‖∇Ψ(x)‖² after ``--iters`` iterations on seed 0 (the figure uses seeds 1-3); diverged points are
discarded. Run on demand: ``python benchmarks/tune_zoba_quadratic.py --out benchmarks/results/tune_zoba.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import bilevel
from bilevel.run import run

GRIDS = {
    "zoba": {"step_size": [0.01, 0.03, 0.1, 0.3], "outer_ratio": [1, 2, 10]},
    "hf-zoba": {"step_size": [0.01, 0.03, 0.1, 0.3], "outer_ratio": [1, 2, 10]},
    "zmdsba": {"outer_lr": [1e-3, 1e-2, 3e-2, 1e-1], "inner_lr": [5e-4, 2e-3]},
    "soba": {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [1, 2, 10]},
    "pzobo": {"outer_lr": [0.01, 0.1, 0.3, 1.0]},
}
PROBLEM = dict(dim_inner=20, dim_outer=20, n_samples_inner=1024, n_samples_outer=1024, mu_inner=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/tune_zoba.json")
    args = parser.parse_args()
    problem = bilevel.problems.make("quadratic", seed=args.seed, **PROBLEM)
    report = {"problem": PROBLEM, "seed": args.seed, "iters": args.iters, "methods": {}}
    for name, grid in GRIDS.items():
        rows = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values, strict=True))
            if name == "zmdsba":
                params["solver_lr"] = params["inner_lr"]
            started = time.perf_counter()
            result = run(bilevel.methods.make(name, **params), problem, max_iters=args.iters, eval_every=args.iters,
                         seed=args.seed)
            final = float(result.trace["hypergrad_norm2"].iloc[-1])
            rows.append({"params": params, "final_hypergrad_norm2": final, "status": result.status,
                         "seconds": round(time.perf_counter() - started, 2)})
            print(name, params, f"{final:.3e}", result.status, flush=True)
        ok = [r for r in rows if r["status"] == "completed" and r["final_hypergrad_norm2"] < 1e6]
        best = min(ok, key=lambda r: r["final_hypergrad_norm2"]) if ok else None
        report["methods"][name] = {"grid": rows, "selected": best}
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
