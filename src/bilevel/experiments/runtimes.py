"""Measured runtimes from Snakemake's ``benchmark:`` files: ``figures/runtimes.md`` (one row per rule and
target) and the runtime column of the README's "What the workflow produces" table.

The benchmark files live under ``<results_dir>/benchmarks/<rule>/<target>[/...].tsv`` (one job each;
column ``s`` = wall seconds, ``max_rss`` = largest resident set in MB). The README table is generated
between the markers ``<!-- runtimes:begin -->`` and ``<!-- runtimes:end -->``: the fourth cell of each
row whose target names ``figures/<experiment>.png`` (or the notebooks) is rewritten from the
benchmarks of that experiment; other rows (tables, claims, the whole DAG) keep their hand-measured text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..results import atomic_path

BEGIN, END = "<!-- runtimes:begin -->", "<!-- runtimes:end -->"
# cells of a table row split on "|" (the leading "" before the first bar is cell 0):
# | paper | figure / table | target | measured runtime | hardware |
TARGET_CELL, RUNTIME_CELL = 3, 4


def collect(benchmark_dir: str | Path) -> pd.DataFrame:
    """One row per benchmark file: rule, target (the first path part below the rule), seconds, max RSS."""
    rows = []
    for tsv in sorted(Path(benchmark_dir).rglob("*.tsv")):
        rel = tsv.relative_to(benchmark_dir)
        if len(rel.parts) < 2:
            continue
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rel.parts[0], "target": rel.parts[1].removesuffix(".tsv"),
                     "s": float(bench["s"].iloc[0]),
                     "max_rss": float(pd.to_numeric(bench["max_rss"], errors="coerce").iloc[0])})
    return pd.DataFrame(rows, columns=["rule", "target", "s", "max_rss"])


def summary(benchmark_dir: str | Path) -> pd.DataFrame:
    """Per (rule, target): number of jobs, min / max / total seconds and the largest RSS."""
    return collect(benchmark_dir).groupby(["rule", "target"], sort=True).agg(
        jobs=("s", "size"), low=("s", "min"), high=("s", "max"), total=("s", "sum"), rss=("max_rss", "max"))


def runtimes_markdown(benchmark_dir: str | Path) -> str:
    """``figures/runtimes.md``: per rule and target, jobs, min / max / total wall seconds, max RSS."""
    lines = ["# Runtimes of this run", "", "From Snakemake's `benchmark:` files (`results/benchmarks/`), one job each; "
             "memory is the largest resident set size of a job.", "",
             "| rule | target | jobs | min s | max s | total s | max RSS (MB) |", "|---|---|---|---|---|---|---|"]
    for (rule, target), r in summary(benchmark_dir).iterrows():
        lines.append(f"| {rule} | {target} | {int(r.jobs)} | {r.low:.1f} | {r.high:.1f} | {r.total:.1f} | {r.rss:.0f} |")
    return "\n".join(lines) + "\n"


def write_runtimes(benchmark_dir: str | Path, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(runtimes_markdown(benchmark_dir))


def _span(low: float, high: float) -> str:
    return f"{low:.0f} s" if round(low) == round(high) else f"{low:.0f}-{high:.0f} s"


def experiment_cell(table: pd.DataFrame, experiment: str) -> str | None:
    """``classifier 6 s, 12 run jobs of 9-16 s, plot 8 s`` for one experiment; None without benchmarks."""
    parts = []
    for rule, text in (("train_classifier", "classifier {span}"), ("run", "{jobs} run job{s} of {span}"),
                       ("plot", "plot {span}")):
        if (rule, experiment) in table.index:
            r = table.loc[(rule, experiment)]
            parts.append(text.format(span=_span(r.low, r.high), jobs=int(r.jobs), s="s" if r.jobs > 1 else ""))
    return ", ".join(parts) or None


def notebooks_cell(table: pd.DataFrame) -> str | None:
    if "notebooks" not in table.index.get_level_values("rule"):
        return None
    r = table.loc["notebooks"]
    return f"{_span(r.low.min(), r.high.max())} each"


def fill_readme_table(text: str, benchmark_dir: str | Path) -> str:
    """The README text with the runtime cells between the markers rewritten from ``benchmark_dir``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"README: the runtime table must sit between {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    table = summary(benchmark_dir)
    if table.empty:
        raise ValueError(f"{benchmark_dir}: no benchmark files (run the workflow first)")
    lines = []
    for line in body.split("\n"):
        cells = line.split("|")
        if line.startswith("|") and len(cells) > RUNTIME_CELL + 1 and not set(cells[2].strip()) <= {"-"}:
            target = cells[TARGET_CELL]
            found = re.search(r"`figures/([a-z0-9_]+)\.png`", target)
            cell = (experiment_cell(table, found.group(1)) if found
                    else notebooks_cell(table) if "figures/notebooks/" in target else None)
            if cell is not None:
                cells[RUNTIME_CELL] = f" {cell} "
                line = "|".join(cells)
        lines.append(line)
    return head + BEGIN + "\n".join(lines) + END + tail


def update_readme(readme: str | Path, benchmark_dir: str | Path) -> None:
    """Rewrite the README's runtime cells from a run's benchmark files, atomically."""
    text = fill_readme_table(Path(readme).read_text(), benchmark_dir)
    with atomic_path(readme) as tmp:
        tmp.write_text(text)
