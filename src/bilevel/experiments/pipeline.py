"""The workflow's steps as functions (the Snakemake rules and the CLI are thin adapters over these).

run -> results/<experiment>/<method>/seed<S1>_<S2>...csv (+ provenance): the seeds of one job (``seeds_per_job``)
aggregate -> results/<experiment>/aggregate.csv (+ provenance)
plot -> figures/<experiment>.{pdf,png}
claims -> figures/claims.md
fetch / download -> results/data/<dataset>.json, results/downloads/<dataset>.json (which files, checksums)
datasets table -> figures/datasets.md
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from .. import data
from ..results import atomic_path, provenance, provenance_path, read_results, write_csv, write_json, write_results
from . import tables, tuning
from .base import aggregate, dataset_label, summary_table
from .config import ConfigError, check_experiment
from .registry import get as get_experiment


def resolve_device(name: str | None) -> str:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; anything else is returned as is."""
    if name in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def checkpoint_dir(out: str | Path, seed: int | None = None) -> Path:
    """Where a job writing ``out`` keeps its resumable checkpoints (not a workflow output, so an interrupted
    job's checkpoints survive until the re-run resumes and completes); a job of several seeds keeps one
    folder per seed (``seed=S``) inside it."""
    out = Path(out)
    folder = out.with_name(f"{out.stem}.checkpoints")
    return folder if seed is None else folder / f"seed{int(seed)}"


def seed_batches(seeds, per_job="all") -> list[list[int]]:
    """An experiment's figure ``seeds`` split into the seed lists of its jobs, ``per_job`` seeds each
    (``"all"``: one job), in configuration order (config key ``seeds_per_job``)."""
    seeds = [int(s) for s in seeds]
    if per_job == "all":
        return [seeds] if seeds else []
    if isinstance(per_job, bool) or not isinstance(per_job, int) or per_job < 1:
        raise ConfigError(f"seeds_per_job: 'all' or an integer >= 1, got {per_job!r}")
    return [seeds[i:i + per_job] for i in range(0, len(seeds), per_job)]


def batch_name(seeds) -> str:
    """The file stem's seed part of a job of ``seeds``: ``[1, 2]`` -> ``"1_2"`` (``seed1_2.csv``)."""
    return "_".join(str(int(s)) for s in seeds)


def parse_batch(name: str) -> list[int]:
    """Inverse of :func:`batch_name`: ``"1_2"`` -> ``[1, 2]``."""
    try:
        seeds = [int(part) for part in str(name).split("_")]
    except ValueError:
        raise ValueError(f"seed list {name!r}: expected seeds joined by '_' (e.g. 1_2)") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed list {name!r}: a seed appears twice")
    return seeds


#: default of the config key ``torch_threads``: the torch threads of every job (rule and CLI alike)
TORCH_THREADS = 1


def pin_threads(config: dict) -> int:
    """Set torch's intra-op threads to the configuration's ``torch_threads`` (default 1) and the runs' clock
    to its ``clock`` (default ``auto``: CPU seconds on a CPU, :data:`bilevel.run.CLOCKS`); return the threads.

    Every job entry point calls this (the rules' scripts and ``bilevel run`` both reach it through the job
    functions), so one seed gives the same numbers whichever way a job is started: float32 reductions
    (the few-shot networks) differ in their last bits between thread counts."""
    import torch

    from ..run import set_default_clock

    threads = int(config.get("torch_threads", TORCH_THREADS))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    set_default_clock(config.get("clock", "auto"))
    return threads


def _definition(experiment: str):
    try:
        return get_experiment(experiment)
    except KeyError as err:
        raise ConfigError(f"experiments.{experiment}: {err.args[0]}") from None


def _run_and_write(config: dict, experiment: str, exp_cfg: dict, label: str, seeds: list[int], out: str | Path,
                   progress, extra: dict) -> pd.DataFrame:
    """Run the job of ``exp_cfg`` (the experiment's section as this job sees it) for each seed of ``seeds``,
    one after the other (each run seeded on its own, so its numbers do not depend on the batch), and
    write all rows and one provenance record atomically."""
    import torch  # imported here, as in every job function: the bookkeeping rules import this module without it

    from .. import classifiers

    definition = _definition(experiment)
    check_experiment(experiment, exp_cfg, definition)
    pin_threads(config)
    if label not in exp_cfg["methods"]:
        raise KeyError(f"experiments.{experiment}.methods has no method {label!r}; "
                       f"configured: {', '.join(exp_cfg['methods'])}")
    device = resolve_device(exp_cfg.get("device", config.get("device", "cpu")))
    data.configure(**config.get("data", {}))
    classifiers.configure(models_dir(config))
    single = len(seeds) == 1
    parts, walls = [], {}
    with data.track_usage() as datasets:
        for k, seed in enumerate(seeds):
            if not single:
                logging.getLogger(__name__).info("%s / %s: seed %d (%d of %d)", experiment, label, seed, k + 1, len(seeds))
            torch.manual_seed(seed)  # belt and braces: methods draw from their own generator
            started = time.perf_counter()
            resume = {"checkpoint_dir": checkpoint_dir(out, None if single else seed)} if definition.checkpoints else {}
            parts.append(definition.run_job(experiment, exp_cfg, label, seed, device=device, progress=progress, **resume))
            walls[seed] = round(time.perf_counter() - started, 3)
    rows = pd.concat(parts, ignore_index=True)
    seed_entry = {"seed": seeds[0]} if single else {"seeds": list(seeds)}
    timing = {"wall_seconds": round(sum(walls.values()), 3)}
    if not single:
        timing["wall_seconds_per_seed"] = {str(s): w for s, w in walls.items()}
    record = provenance({"experiment": experiment, "method": label, **seed_entry, "section": exp_cfg, **extra},
                        seed=seeds[0] if single else list(seeds), device=device, datasets=datasets,
                        extra={**timing, "statuses": sorted(rows["status"].unique().tolist())})
    write_results(rows, out, record)
    return rows


def execute_job(config: dict, experiment: str, label: str, seed, out: str | Path, progress=False,
                selection: str | Path | None = None) -> pd.DataFrame:
    """Run one (experiment, method label, seeds) job of a figure -- with the parameters its selection chose,
    for a tuned experiment -- and write its rows and provenance atomically. ``seed``: one seed or a list
    of seeds (a job of ``seeds_per_job`` seeds, run one after the other)."""
    seeds = [int(seed)] if isinstance(seed, (int, str)) else [int(s) for s in seed]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"experiments.{experiment}: a job needs distinct seeds, got {seeds}")
    if experiment not in config["experiments"]:
        raise ConfigError(f"experiments.{experiment}: not in the configuration")
    chosen, path = tuning.read_selection(config, experiment, selection)
    exp_cfg = tuning.apply(config["experiments"][experiment], chosen)
    extra = {} if path is None else {"selection": {"file": str(path), "sha256": data.checksums(path, ("sha256",))["sha256"],
                                                   "params": chosen["methods"].get(label, {}).get("params", {})}}
    return _run_and_write(config, experiment, exp_cfg, label, seeds, out, progress, extra)


def execute_tuning_job(config: dict, experiment: str, label: str, cell: str, seed: int, out: str | Path,
                       progress=False) -> pd.DataFrame:
    """One tuning job: method ``label`` with the values of grid ``cell`` on tuning seed ``seed`` under the
    tuning budget (:func:`.tuning.tuning_config`)."""
    exp_cfg = config["experiments"].get(experiment)
    if exp_cfg is None or not tuning.tuned(exp_cfg):
        raise ConfigError(f"experiments.{experiment}.tuning: this experiment has no tuning stage")
    if seed not in exp_cfg["tuning"]["seeds"]:
        raise ConfigError(f"experiments.{experiment}.tuning.seeds: {seed} is not a tuning seed")
    job_cfg = tuning.tuning_config(exp_cfg, label, cell)
    return _run_and_write(config, experiment, job_cfg, label, [int(seed)], out, progress, {"tuning_cell": cell})


def write_selection(config: dict, experiment: str, inputs: list[str | Path], out: str | Path) -> dict:
    """The selection of a tuned experiment from its tuning jobs' CSVs
    (``.../<label>/<cell>/seed<S>.csv``), written as JSON with provenance."""
    exp_cfg = config["experiments"][experiment]
    section = exp_cfg["tuning"]
    scores: dict[str, dict[str, dict[int, float]]] = {}
    for p in inputs:
        p = Path(p)
        label, cell, seed = p.parent.parent.name, p.parent.name, int(p.stem.removeprefix("seed"))
        rows = read_results([p])
        scores.setdefault(label, {}).setdefault(cell, {})[seed] = tuning.run_score(
            rows, section["metric"], section.get("mode", "min"), section.get("at", "final"))
    selection = tuning.select(experiment, exp_cfg, scores)
    selection["provenance"] = {"git": provenance(None)["git"], "inputs": len(inputs)}
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(selection, indent=1, sort_keys=True, default=str) + "\n")
    return selection


def compare_selections(config: dict, built: dict[str, str | Path], out: str | Path) -> str:
    """``results/tuning/check.md``: whether each rebuilt selection equals the committed one (choices and
    scores; provenance aside)."""
    lines = ["# Tuning: rebuilt selections against the committed ones", "",
             f"Committed selections: `{config.get('selections_dir', 'config/selections')}/`. To adopt a rebuilt "
             "selection, copy it there.", "", "| experiment | rebuilt | committed | same choices | same scores |",
             "|---|---|---|---|---|"]
    for experiment, path in built.items():
        new = json.loads(Path(path).read_text())
        committed = Path(config.get("selections_dir", "config/selections")) / f"{experiment}.json"
        if not committed.is_file():
            lines.append(f"| {experiment} | `{path}` | (none) | - | - |")
            continue
        old = json.loads(committed.read_text())
        same_choice = {k: m.get("params") for k, m in new["methods"].items()} == \
            {k: m.get("params") for k, m in old["methods"].items()} and new["key"] == old["key"]
        strip = ("provenance",)
        same = {k: v for k, v in new.items() if k not in strip} == {k: v for k, v in old.items() if k not in strip}
        lines.append(f"| {experiment} | `{path}` | `{committed}` | {'yes' if same_choice else '**no**'} | "
                     f"{'yes' if same else '**no**'} |")
    text = "\n".join(lines) + "\n"
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return text


def aggregate_files(inputs: list[str], out: str | Path, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Aggregate result CSVs over seeds and write the aggregate with provenance (``rows``: the CSVs
    already read)."""
    agg = aggregate(read_results(inputs) if rows is None else rows)
    write_json(provenance(None, extra={"inputs": [str(p) for p in inputs]}), provenance_path(out))
    write_csv(agg, out)
    return agg


def plot_files(config: dict, experiment: str, aggregate_csv: str | Path, outputs: list[str]) -> None:
    """Draw an experiment's figure from its aggregate."""
    get_experiment(experiment).plot(pd.read_csv(aggregate_csv), config["experiments"][experiment], outputs)


def _per_seed(claim, rows: pd.DataFrame | None, exp_cfg: dict) -> str:
    """``holds on k of n seeds`` (the claim checked on each seed's runs alone; seeds where it cannot be
    evaluated are counted apart)."""
    if rows is None or rows.empty:
        return ""
    labels = [claim.check(aggregate(grp), exp_cfg).label for _, grp in rows.groupby("seed", sort=True)]
    text = f"{labels.count('holds')} of {len(labels)}"
    skipped = labels.count("not evaluated")
    return text + (f" ({skipped} not evaluable alone)" if skipped else "")


def _short_protocol(selection: dict | None) -> str:
    if selection is None:
        return "configured"
    edges = [f"{lab}.{p}" for lab, m in selection["methods"].items() for p in m.get("edge", [])]
    tuned_ = [lab for lab, m in selection["methods"].items() if "fixed" not in m]
    text = f"tuned ({len(tuned_)} of {len(selection['methods'])} methods, seeds {selection['seeds']})"
    return text + (f"; grid edge: {', '.join(edges)}" if edges else "")


def claims_markdown(config: dict, aggregates: dict[str, str | Path], results: dict[str, list] | None = None,
                    selections: dict[str, str | Path | None] | None = None) -> str:
    """The claims report: per experiment how its parameters were chosen (the selection, with grid-edge
    flags), then each claim with its source, our measurement, the verdict and on how many seeds it holds
    alone (``results``: the experiment's per-seed CSVs)."""
    lines = ["# Claims checked on this run", "",
             "Each claim is evaluated on the aggregated results of this run of the workflow, with this run's "
             "configuration, and again on each seed's runs alone (column *seeds*: on how many it holds). "
             "A claim that does not hold is reported as such, never tuned away. *Protocol*: how the "
             "compared methods' parameters were chosen (tuned on held-out seeds by the selection shown, or "
             "the configured values). A claim on time (*faster*, *slower*, *fastest*) holds only by a margin: the "
             "faster method needs at most (1 − m) times the other's time, with m the experiment's "
             "`claims.time_margin` (default 10%, stated in each such measurement), so that timer noise between "
             "identical runs does not flip the verdict.", ""]
    counts = {"holds": 0, "does not hold": 0, "not evaluated": 0}
    edges: list[str] = []
    for name, path in aggregates.items():
        exp = get_experiment(name)
        exp_cfg = config["experiments"][name]
        agg = pd.read_csv(path)
        rows = read_results(results[name]) if results and results.get(name) else None
        sel_path = (selections or {}).get(name)
        selection = json.loads(Path(sel_path).read_text()) if sel_path else None
        label = dataset_label(agg)
        data_note = f" Data: **{label}**." if label else ""
        lines += [f"## {exp.title} (`{name}`)", "", f"Paper: {exp.paper}. Figure: `figures/{name}.png`.{data_note}", "",
                  f"Protocol: {tuning.protocol(selection)}.", ""]
        if selection is not None:
            lines += tuning.selection_markdown(selection, str(sel_path))
            edges += [f"`{name}`: {lab}.{p}" for lab, m in selection["methods"].items() for p in m.get("edge", [])]
        lines += ["| claim | statement | source | our measurement | verdict | seeds | protocol |",
                  "|---|---|---|---|---|---|---|"]
        protocol_tag = _short_protocol(selection)
        for claim in exp.claims:
            verdict = claim.check(agg, exp_cfg)
            counts[verdict.label] += 1
            mark = {"holds": "**holds**", "does not hold": "**does not hold**", "not evaluated": "not evaluated"}
            lines.append(f"| `{claim.id}` | {claim.statement} | {claim.source} | {verdict.measurement} | "
                         f"{mark[verdict.label]} | {_per_seed(claim, rows, exp_cfg)} | {protocol_tag} |")
        lines.append("")
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    header = [f"Summary: {summary}.", ""]
    if edges:
        header += ["Choices on a grid edge (the grid may not contain the best value): " + "; ".join(edges) + ".", ""]
    lines[2:2] = header
    return "\n".join(lines)


def write_claims(config: dict, aggregates: dict[str, str | Path], out: str | Path,
                 results: dict[str, list] | None = None, selections: dict[str, str | Path | None] | None = None) -> None:
    """Write ``claims.md`` atomically."""
    text = claims_markdown(config, aggregates, results, selections)
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")


def dataset_request(entry) -> tuple[str, list[str] | None]:
    """``"mnist"`` or ``{"name": "mnist", "splits": ["test"]}`` -> (name, splits)."""
    if isinstance(entry, str):
        return entry, None
    return entry["name"], entry.get("splits")


def fetch_dataset(config: dict, name: str, out: str | Path, download: bool = False) -> dict:
    """Make dataset ``name`` available (cache, seeds, exact offline route; the network only when the
    config allows it or ``download``) and write what was used -- label, source, files with sha256,
    shapes -- as a provenance record. ``download`` never falls back to a stand-in."""
    data_cfg = dict(config.get("data", {}))
    requests = dict(dataset_request(e) for e in data_cfg.get("datasets", []))
    splits = requests.get(name)
    data.configure(**{**data_cfg, "stand_ins": {} if download else data_cfg.get("stand_ins", {})})
    dataset = data.load(name, splits, allow_download=True if download else None)
    record = provenance(None, datasets=[dataset.record()],
                        extra={"requested": name, "splits": splits, "download": download,
                               "data_dir": str(data.DataStore(data_cfg.get("dir")).data_dir)})
    write_json(record, out)
    return record


def datasets_markdown(manifests: list[str | Path]) -> str:
    """The table of datasets used by this run: what was asked for, what was used, from which files."""
    lines = ["# Datasets used by this run", "",
             "Every file is identified by its official name and checksum. A stand-in is labelled "
             "`STAND-IN: <stand-in> for <official>` here and in every figure, table and claim that uses it.", "",
             "| requested | used | source | shapes | files (sha256) | licence |", "|---|---|---|---|---|---|"]
    for path in manifests:
        m = json.loads(Path(path).read_text())
        (d,) = m["datasets"]
        shapes = "; ".join(f"{s}: " + ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in arrays.items())
                           for s, arrays in d["shapes"].items())
        files = "<br>".join(f"`{f['folder']}/{f['file']}` `{f['sha256']}` ({f['origin']})" for f in d["files"])
        used = f"**{d['label']}**" if d["stand_in_for"] else d["label"]
        cells = [m["requested"], used, d["source"], shapes, files or "(installed package)", d["licence"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_datasets_table(manifests: list[str | Path], out: str | Path) -> None:
    with atomic_path(out) as tmp:
        tmp.write_text(datasets_markdown(manifests))


def write_table(name: str, md_out: str | Path, tex_out: str | Path) -> None:
    """A paper table (``bilevel.experiments.tables``) as Markdown and LaTeX, atomically."""
    for fmt, out in (("md", md_out), ("tex", tex_out)):
        with atomic_path(out) as tmp:
            tmp.write_text(tables.render(name, fmt))


def models_dir(config: dict) -> Path:
    """Where trained classifiers are cached: ``<results_dir>/models``."""
    return Path(config.get("results_dir", "results")) / "models"


def train_classifier(config: dict, experiment: str, out: str | Path) -> dict:
    """Train (or load from the cache) the classifier an experiment's problem attacks; write its record
    (accuracies, spec, cache key) with provenance to ``out``."""
    from .. import classifiers

    params = config["experiments"][experiment]["problem"].get("params", {})
    pin_threads(config)
    data.configure(**config.get("data", {}))
    classifiers.configure(models_dir(config))
    with data.track_usage() as datasets:
        trained = classifiers.classifier_for(params.get("dataset", "mnist"), params.get("classifier"))
    record = provenance({"experiment": experiment, "classifier": trained["record"]}, datasets=datasets,
                        extra={"cache": str(models_dir(config) / f"{trained['key'][:16]}.pt")})
    write_json(record, out)
    return record


def _cell(value, digits: int = 3) -> str:
    if isinstance(value, tuple):
        mean, std = value
        if pd.isna(mean):
            return ""
        return f"{mean:.{digits}g} ± {0.0 if pd.isna(std) else std:.2g}"
    return "" if isinstance(value, float) and pd.isna(value) else str(value)


def summary_data(experiment: str, inputs: list[str | Path], exp_cfg: dict | None = None,
                 rows: pd.DataFrame | None = None) -> list[dict]:
    """The summary tables of an experiment's per-seed results as table data: the experiment's own
    ``tables`` (e.g. sweep grids; they need ``exp_cfg``) or the final values per method
    (:func:`~.base.summary_table`); ``rows``: the CSVs already read."""
    exp = get_experiment(experiment)
    rows = read_results(inputs) if rows is None else rows
    if exp.tables is not None:
        if exp_cfg is None:
            raise ValueError(f"summary of {experiment}: its tables need the experiment's configuration")
        return exp.tables(rows, exp_cfg)
    table = summary_table(rows, exp.summary_metrics)
    label = dataset_label(rows)
    cols = [c for c in table.columns]
    return [{"title": f"{exp.title}: final values per method",
             "caption": f"Mean ± std over seeds of the last evaluation of each run (time = timed method work); "
                        f"experiment `{experiment}`" + (f"; data: {label}" if label else "") + ".",
             "columns": cols, "rows": [[_cell(r[c]) for c in cols] for _, r in table.iterrows()]}]


def write_summary(experiment: str, inputs: list[str | Path], md_out: str | Path, tex_out: str | Path,
                  exp_cfg: dict | None = None, rows: pd.DataFrame | None = None) -> None:
    """Write an experiment's summary tables as Markdown and LaTeX (one after the other), atomically."""
    data_ = summary_data(experiment, inputs, exp_cfg, rows)
    for fmt, out in (("md", md_out), ("tex", tex_out)):
        with atomic_path(out) as tmp:
            tmp.write_text("\n".join(tables.render_data(d, fmt) for d in data_))
