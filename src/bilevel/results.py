"""Result rows, atomic writes and provenance.

Row schema (long/tidy, one row per evaluation point and metric)::

    experiment, phase, problem, dataset, stand_in, method, method_name, params, seed, step, time,
    f_value, f_grad, f_hvp, f_hessian, g_value, g_grad, g_hvp, g_hessian,
    oracle_calls, function_evals, metric, value, status

``dataset`` names the dataset a problem was built from (empty for synthetic problems) and
``stand_in`` the official dataset it replaces when it is a stand-in (``specs/datasets.md`` §1).
``method`` is the label the experiment gives a configuration (e.g. ``aid-cg``), ``method_name``
the registry name (``aid``), ``params`` its hyper-parameters as canonical JSON, ``phase`` the part of
an experiment a row belongs to (e.g. ``hypergradient`` or ``optimization``), ``time`` the timed
seconds (method work only), ``status`` the run's final status (``completed`` or ``diverged``);
``oracle_calls`` and ``function_evals`` are the totals of the per-kind counts defined once in
:func:`bilevel.oracle.totals` (derivative calls, a full Hessian weighted ``HESSIAN_WEIGHT``; values).
Every CSV has a JSON sidecar ``<name>.provenance.json``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd

from .accounting import COUNT_KEYS, TOTAL_KEYS
from .files import atomic_path, canonical_json, config_hash  # re-exported: bilevel.results.atomic_path etc.

COUNT_COLUMNS = (*COUNT_KEYS, *TOTAL_KEYS)  # the totals as defined by bilevel.oracle.totals
LABEL_COLUMNS = ("experiment", "phase", "problem", "dataset", "stand_in", "method", "method_name", "params", "seed")
OPTIONAL_LABELS = {"dataset": "", "stand_in": ""}
ROW_COLUMNS = (*LABEL_COLUMNS, "step", "time", *COUNT_COLUMNS, "metric", "value", "status")
TIME_COLUMNS = ("time",)
#: metrics that are timings (differ between two runs of the same seed)
TIME_METRICS = ("cumulative_time",)
PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "snakemake", "bilevel")


def tidy(trace: pd.DataFrame, **labels) -> pd.DataFrame:
    """Turn a wide run trace (one row per evaluation point) into schema rows (one per metric).

    ``labels`` fills the label columns (experiment, phase, problem, method, method_name, params, seed;
    dataset and stand_in default to empty).
    """
    labels = {**OPTIONAL_LABELS, **labels}
    missing = [c for c in LABEL_COLUMNS if c not in labels]
    if missing:
        raise ValueError(f"tidy(): missing labels {', '.join(missing)}")
    fixed = ["step", "time", *COUNT_COLUMNS, "status"]
    metric_cols = [c for c in trace.columns if c not in fixed]
    long = trace.melt(id_vars=fixed, value_vars=metric_cols, var_name="metric", value_name="value")
    for key, value in labels.items():
        long[key] = canonical_json(value) if key == "params" else value
    long = long.sort_values(["step", "metric"], kind="stable").reset_index(drop=True)
    return long[list(ROW_COLUMNS)]


def without_times(rows: pd.DataFrame) -> pd.DataFrame:
    """Result rows with the timings removed (``TIME_COLUMNS`` dropped, values of
    ``TIME_METRICS`` blanked): what two runs of the same seed must reproduce exactly."""
    rows = rows.drop(columns=[c for c in TIME_COLUMNS if c in rows.columns])
    return rows.assign(value=rows["value"].where(~rows["metric"].isin(TIME_METRICS)))


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` to CSV atomically (full float precision, no index)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.17g")


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def provenance_path(csv_path: str | os.PathLike) -> Path:
    """``results/x/seed1.csv`` -> ``results/x/seed1.provenance.json``."""
    p = Path(csv_path)
    return p.with_name(p.stem + ".provenance.json")


def _git_commit() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(device=None) -> dict:
    """The hardware a result was measured on (CPU model and cores; GPU name when CUDA is used)."""
    torch = sys.modules.get("torch")  # a job that never imported torch (aggregate, plot) ran no torch code
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch is not None and device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info["device"] = str(device) if device is not None else "cpu"
    return info


#: batch-scheduler variables recorded with a result (which cluster job, node and resources produced it)
SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE",
                       "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")


def scheduler_description() -> dict | None:
    """The SLURM job a result was computed in (its variables that are set), None outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    return {name.lower(): os.environ[name] for name in SCHEDULER_VARIABLES if name in os.environ}


def provenance(config=None, *, seed=None, device=None, datasets=(), extra=None) -> dict:
    """Provenance record: git commit, package versions, device, scheduler job, config and its hash,
    datasets used."""
    record = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git_commit(),
        "versions": _versions(),
        "device": device_description(device),
        "scheduler": scheduler_description(),
        "config": config,
        "config_hash": config_hash(config) if config is not None else None,
        "seed": seed,
        "datasets": list(datasets),
        "command": sys.argv,
    }
    if extra:
        record.update(extra)
    return record


def write_results(df: pd.DataFrame, path: str | os.PathLike, record: dict) -> None:
    """Write schema rows to ``path`` and the provenance ``record`` beside it (both atomically)."""
    missing = [c for c in ROW_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results for {path} miss columns {', '.join(missing)}")
    write_json(record, provenance_path(path))
    write_csv(df[list(ROW_COLUMNS)], path)


def read_results(paths) -> pd.DataFrame:
    """Concatenate result CSVs (schema-checked)."""
    frames = []
    for p in paths:
        df = pd.read_csv(p)
        missing = [c for c in ROW_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{p} is not a results file: missing columns {', '.join(missing)}")
        for col in OPTIONAL_LABELS:  # empty labels read back as NaN
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
