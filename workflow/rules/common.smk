# Shared helpers: configuration checks at parse time (before any job starts), paths, targets.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # the package, also without an installed copy

from bilevel.experiments import ConfigError, check_config  # noqa: E402

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

RESULTS = config["results_dir"]
FIGURES = config["figures_dir"]
LOGS = config["logs_dir"]


wildcard_constraints:
    experiment="[a-z0-9_]+",
    method="[a-z0-9][a-z0-9-]*",
    seed="[0-9]+",


def job_results(experiment):
    """Every per-(method, seed) result CSV of an experiment."""
    exp = config["experiments"][experiment]
    return [
        f"{RESULTS}/{experiment}/{method}/seed{seed}.csv"
        for method in exp["methods"]
        for seed in exp["seeds"]
    ]


def all_targets():
    targets = [
        f"{FIGURES}/{e}.{ext}" for e in config["experiments"] for ext in ("pdf", "png")
    ]
    targets.append(f"{FIGURES}/claims.md")
    if config["notebooks"]:
        targets.append(f"{FIGURES}/notebooks/baselines.ipynb")
    return targets
