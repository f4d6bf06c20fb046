# Shared helpers: paths, targets, and what a job rule needs to know of its experiment.
from bilevel.experiments import get as get_experiment
from bilevel.experiments import tuning
from bilevel.experiments.pipeline import batch_name, parse_batch, seed_batches

RESULTS = config["results_dir"]
FIGURES = config["figures_dir"]
LOGS = config["logs_dir"]

# Resources of a method job, by whether its experiment runs on a GPU (Experiment.gpu, the one source):
# GPU jobs declare one GPU (Snakemake's gpu resource; the SLURM profile submits it as --gpus=1).
JOB_RESOURCES = {
    False: {"gpu": 0, "mem_mb": 2000, "runtime": 30},
    True: {"gpu": 1, "mem_mb": 8000, "runtime": 240},
}


def job_env(wildcards):
    """The conda environment of an experiment's method jobs: envs/gpu.yaml for GPU experiments."""
    kind = "gpu" if get_experiment(wildcards.experiment).gpu else "cpu"
    return f"../../envs/{kind}.yaml"


def job_resource(name):
    """``resources: NAME=job_resource(NAME)``: the value for the job's experiment (``runtime``: per seed
    of a job's seed list)."""

    def value(wildcards):
        base = JOB_RESOURCES[get_experiment(wildcards.experiment).gpu][name]
        seeds = getattr(wildcards, "seeds", None)
        return base * len(parse_batch(seeds)) if name == "runtime" and seeds else base

    return value


wildcard_constraints:
    experiment="[a-z0-9_]+",
    dataset="[a-z0-9][a-z0-9-]*",
    method="[a-z0-9][a-z0-9-]*",
    seed="[0-9]+",
    seeds="[0-9]+(_[0-9]+)*",
    cell="c[0-9]+",
    table="[a-z0-9_]+",


def job_results(experiment):
    """Every result CSV of an experiment: one per (method, seed list of a job; ``seeds_per_job``)."""
    exp = config["experiments"][experiment]
    return [
        f"{RESULTS}/{experiment}/{method}/seed{batch_name(batch)}.csv"
        for method in exp["methods"]
        for batch in seed_batches(exp["seeds"], config["seeds_per_job"])
    ]


def tuned_experiments():
    """The experiments with a tuning stage (a ``tuning`` section)."""
    return [e for e, exp in config["experiments"].items() if tuning.tuned(exp)]


def tuning_results(experiment):
    """Every tuning-job CSV of an experiment: (method with a grid, grid cell, tuning seed)."""
    exp = config["experiments"][experiment]
    return [
        f"{RESULTS}/tuning/{experiment}/{method}/{cell}/seed{seed}.csv"
        for method, entry in exp["methods"].items()
        if "tune" in entry
        for cell, _ in tuning.cells(entry)
        for seed in exp["tuning"]["seeds"]
    ]


def selection_input(experiment):
    """The selection a tuned experiment's figure jobs read (committed, or this run's tuning stage)."""
    if not tuning.tuned(config["experiments"][experiment]):
        return []
    return [str(tuning.selection_path(config, experiment))]


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
    if (
        config["selections"] == "run" and tuned_experiments()
    ):  # this run's tuning stage, checked
        targets.append(f"{RESULTS}/tuning/check.md")
    if with_runtimes:  # written last, from the benchmark files of every other job
        targets.append(f"{FIGURES}/runtimes.md")
    return targets
