# Shared helpers: configuration checks at parse time (before any job starts), paths, targets.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # the package, also without an installed copy

from bilevel.experiments import ConfigError, check_config  # noqa: E402
from bilevel.experiments import get as get_experiment  # noqa: E402

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

RESULTS = config["results_dir"]
FIGURES = config["figures_dir"]
LOGS = config["logs_dir"]


def gpu_experiments():
    """Experiments whose jobs run on a GPU when present (rule run_gpu_job)."""
    return [e for e in config["experiments"] if get_experiment(e).gpu]


# run_gpu_job produces the job files of GPU experiments, run_job those of all others
GPU_EXPERIMENT_PATTERN = "|".join(gpu_experiments()) or "(?!)"


wildcard_constraints:
    experiment="[a-z0-9_]+",
    dataset="[a-z0-9][a-z0-9-]*",
    method="[a-z0-9][a-z0-9-]*",
    seed="[0-9]+",
    table="[a-z0-9_]+",


def job_results(experiment):
    """Every per-(method, seed) result CSV of an experiment."""
    exp = config["experiments"][experiment]
    return [
        f"{RESULTS}/{experiment}/{method}/seed{seed}.csv"
        for method in exp["methods"]
        for seed in exp["seeds"]
    ]


def experiment_datasets(experiment):
    """Fetched-dataset records an experiment's jobs need (the ``dataset`` of its problem and cases)."""
    exp = config["experiments"][experiment]
    places = [exp["problem"].get("params", {}), *exp.get("cases", {}).values()]
    names = sorted({p["dataset"] for p in places if "dataset" in p})
    return [f"{RESULTS}/data/{name}.json" for name in names]


def experiment_models(experiment):
    """The trained-classifier record an attack experiment's jobs need."""
    problem = config["experiments"][experiment]["problem"]["name"]
    return (
        [f"{RESULTS}/models/{experiment}.json"]
        if problem in ("blackbox_attack", "online_attack")
        else []
    )


def summary_tables():
    """Per experiment: final values per method (mean ± std over seeds), Markdown and LaTeX."""
    return [
        f"{FIGURES}/tables/{e}.summary.{ext}"
        for e in config["experiments"]
        for ext in ("md", "tex")
    ]


def notebooks():
    """The notebooks that show this configuration's experiments (one per paper)."""
    return sorted({get_experiment(e).notebook for e in config["experiments"]})


def requested_datasets():
    """Names of the datasets in data.datasets (entries are names or {name, splits})."""
    return [
        e if isinstance(e, str) else e["name"]
        for e in config["data"].get("datasets", [])
    ]


def all_targets(with_runtimes=True):
    targets = [
        f"{FIGURES}/{e}.{ext}" for e in config["experiments"] for ext in ("pdf", "png")
    ]
    targets.append(f"{FIGURES}/claims.md")
    if requested_datasets():
        targets.append(f"{FIGURES}/datasets.md")
    targets += [
        f"{FIGURES}/tables/{t}.{ext}" for t in config["tables"] for ext in ("md", "tex")
    ]
    targets += summary_tables()
    if config["notebooks"]:
        targets += [f"{FIGURES}/notebooks/{nb}.ipynb" for nb in notebooks()]
    if with_runtimes:  # written last, from the benchmark files of every other job
        targets.append(f"{FIGURES}/runtimes.md")
    return targets
