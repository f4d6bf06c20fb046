"""Side by side with the ZOBA authors' own code: ‖∇Ψ(x_k)‖² at equal iterations, every method of the traces
(ZOBA, HF-ZOBA, ZMDSBA, SOBA), both parameter sets (A: the authors' defaults; B: this artifact's
``zoba_quadratic`` steps), both stored problems (p = d = 20; p = d = 100 when its file is found), and our
two forms (``authors``: their ZMDSBA choices and benchopt's sampler; ``artifact``: the figures' forms;
:mod:`bilevel.experiments.zoba_reference`).

Each case is compared at two iterations of the authors' traces: an early one (the third evaluation) and the
last one every authors' seed reached, capped by ``--cap`` (so that the whole table runs in minutes): the
authors' min / median / max over their 3 seeds against our median (min-max) over 3 seeds, and whether our
median lies in their range widened by ``--tolerance``. Single-threaded, as the authors' timings.

Run on demand: ``python benchmarks/zoba_reference.py`` (writes benchmarks/results/zoba_reference.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bilevel.experiments import zoba_reference as ref

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "zoba_authors"


def comparison_iterations(traces, case, cap: int) -> list[int]:
    rows = ref.case_rows(traces, case)
    its = sorted(set(rows.iteration))
    last = min(ref.common_last_iteration(traces, case), cap)
    last = max(i for i in its if i <= last)
    early = its[min(2, len(its) - 1)]
    return sorted({early, last})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", nargs="*", default=[str(ref.REFERENCE_DIR), str(SHARED)],
                        help="folders searched for the stored problems (the p = d = 100 file is not in the package)")
    parser.add_argument("--cap", type=int, default=2000, help="largest zeroth-order iteration compared")
    parser.add_argument("--soba-cap", type=int, default=15000, help="largest SOBA iteration compared")
    parser.add_argument("--tolerance", type=float, default=1.5)
    parser.add_argument("--problems", nargs="*", default=list(ref.PROBLEM_FILES))
    parser.add_argument("--out", default="benchmarks/results/zoba_reference")
    args = parser.parse_args()
    traces = ref.load_traces()
    cases = traces[["config", "problem", "method"]].drop_duplicates().sort_values(["problem", "config", "method"])
    rows = []
    for config, problem, method in cases.itertuples(index=False):
        if problem not in args.problems:
            continue
        case = ref.Case(config, problem, method)
        if ref.problem_path(problem, args.reference_dir) is None:
            print(f"{problem}: stored problem not found in {args.reference_dir}; skipped", flush=True)
            continue
        its = comparison_iterations(traces, case, args.soba_cap if method == "soba" else args.cap)
        for form in ref.FORMS:
            t0 = time.process_time()
            runs = ref.run_ours(traces, case, form, max(its), directories=args.reference_dir, threads=1)
            seconds = time.process_time() - t0
            per_iter = 1e3 * float(runs.groupby("seed")["time"].max().mean()) / max(its)
            for it in its:
                authors, ours = ref.authors_values(traces, case, it), ref.ours_at(runs, it)
                row = {"problem": problem, "config": config, "method": method, "form": form, "iteration": it,
                       "authors": authors, "ours": ours, "authors_median": statistics.median(authors),
                       "ours_median": statistics.median(ours),
                       "within": ref.within(ours, authors, args.tolerance), "ms_per_iteration": per_iter,
                       "sampler": ref.sampler_of(form), "params": ref.method_params(traces, case, form)[1]}
                rows.append(row)
                print(f"{problem} {config} {method:8s} {form:9s} it {it:6d}: authors {min(authors):.4g} / "
                      f"{row['authors_median']:.4g} / {max(authors):.4g}, ours {row['ours_median']:.4g} "
                      f"({min(ours):.4g}-{max(ours):.4g}) {'within' if row['within'] else 'OUTSIDE'} "
                      f"[{per_iter:.2f} ms/it, {seconds:.0f} s cpu]", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"tolerance": args.tolerance, "rows": rows}, indent=1))
    lines = [f"| problem | config | method | form | iteration | authors min / median / max | ours median (min-max) "
             f"| within ×/÷{args.tolerance:g} |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {r['config']} | {r['method']} | {r['form']} | {r['iteration']} | "
                     f"{min(r['authors']):.4g} / {r['authors_median']:.4g} / {max(r['authors']):.4g} | "
                     f"{r['ours_median']:.4g} ({min(r['ours']):.4g}-{max(r['ours']):.4g}) | "
                     f"{'yes' if r['within'] else 'no'} |")
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
