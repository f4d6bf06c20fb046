"""The workflow's steps as functions (the Snakemake rules and the CLI are thin adapters over these).

run -> results/<experiment>/<method>/seed<S>.csv (+ provenance)
aggregate -> results/<experiment>/aggregate.csv (+ provenance)
plot -> figures/<experiment>.{pdf,png}
claims -> figures/claims.md
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from ..results import atomic_path, provenance, provenance_path, read_results, write_csv, write_json, write_results
from . import get as get_experiment
from .base import aggregate
from .config import check_experiment


def resolve_device(name: str | None) -> str:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; anything else is returned as is."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def execute_job(config: dict, experiment: str, label: str, seed: int, out: str | Path, progress=False) -> pd.DataFrame:
    """Run one (experiment, method label, seed) job and write its rows and provenance atomically."""
    exp_cfg = config["experiments"][experiment]
    check_experiment(experiment, exp_cfg)
    if label not in exp_cfg["methods"]:
        raise KeyError(f"experiments.{experiment}.methods has no method {label!r}; "
                       f"configured: {', '.join(exp_cfg['methods'])}")
    device = resolve_device(config.get("device", "cpu"))
    torch.manual_seed(int(seed))  # belt and braces: methods draw from their own generator
    started = time.perf_counter()
    rows = get_experiment(experiment).run_job(exp_cfg, label, int(seed), device=device, progress=progress)
    record = provenance({"experiment": experiment, "method": label, "seed": int(seed), "section": exp_cfg},
                        seed=int(seed), device=device,
                        extra={"wall_seconds": round(time.perf_counter() - started, 3),
                               "statuses": sorted(rows["status"].unique().tolist())})
    write_results(rows, out, record)
    return rows


def aggregate_files(inputs: list[str], out: str | Path) -> pd.DataFrame:
    """Aggregate result CSVs over seeds and write the aggregate with provenance."""
    agg = aggregate(read_results(inputs))
    write_json(provenance(None, extra={"inputs": [str(p) for p in inputs]}), provenance_path(out))
    write_csv(agg, out)
    return agg


def plot_files(config: dict, experiment: str, aggregate_csv: str | Path, outputs: list[str]) -> None:
    """Draw an experiment's figure from its aggregate."""
    get_experiment(experiment).plot(pd.read_csv(aggregate_csv), config["experiments"][experiment], outputs)


def claims_markdown(config: dict, aggregates: dict[str, str | Path]) -> str:
    """The claims report: per experiment, each claim with its source, our measurement and verdict."""
    lines = ["# Claims checked on this run", "",
             "Each claim is evaluated on the aggregated results of this run of the workflow, with this run's "
             "configuration. A claim that does not hold is reported as such, never tuned away.", ""]
    counts = {"holds": 0, "does not hold": 0, "not evaluated": 0}
    for name, path in aggregates.items():
        exp = get_experiment(name)
        agg = pd.read_csv(path)
        lines += [f"## {exp.title} (`{name}`)", "", f"Paper: {exp.paper}. Figure: `figures/{name}.png`.", "",
                  "| claim | statement | source | our measurement | verdict |", "|---|---|---|---|---|"]
        for claim in exp.claims:
            verdict = claim.check(agg, config["experiments"][name])
            counts[verdict.label] += 1
            mark = {"holds": "**holds**", "does not hold": "**does not hold**", "not evaluated": "not evaluated"}
            lines.append(f"| `{claim.id}` | {claim.statement} | {claim.source} | {verdict.measurement} | "
                         f"{mark[verdict.label]} |")
        lines.append("")
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    lines.insert(2, f"Summary: {summary}.")
    lines.insert(3, "")
    return "\n".join(lines)


def write_claims(config: dict, aggregates: dict[str, str | Path], out: str | Path) -> None:
    """Write ``claims.md`` atomically."""
    text = claims_markdown(config, aggregates)
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")
