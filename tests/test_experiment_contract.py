"""The contract every registered experiment keeps, checked for each of ``bilevel.experiments.available()``
(a new experiment is covered without editing this file):

- it is present and valid in every configuration (the default and both overlays);
- its ``run_job`` takes the experiment name first (``run_job(name, exp_cfg, label, seed, device=, progress=)``);
- every claim returns a :class:`~bilevel.experiments.Verdict` -- "not evaluated" (holds None, with the
  reason) on an empty aggregate and on one whose values are all NaN, any verdict on a diverged one (values
  growing to 1e300 and inf, status diverged) -- and never raises;
- a method label added to its configuration is handled by its claims (no claim names a label).

The synthetic aggregates are built from the experiment's resolved configuration (its method labels and
seeds, the phases its jobs write, the metrics it declares) with the columns of
:func:`bilevel.experiments.base.aggregate`. Nothing is run; the module takes a few seconds.
"""

import ast
import copy
import functools
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bilevel
from bilevel.experiments import Verdict, available, check_config, get
from bilevel.experiments.base import AGGREGATE_COLUMNS, aggregate
from bilevel.experiments.config import load_config
from bilevel.experiments.registry import INFRASTRUCTURE, experiment_modules
from bilevel.results import COUNT_COLUMNS, ROW_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default": (), "paper": (ROOT / "config" / "paper.yaml",), "test": (ROOT / ".test" / "config" / "config.yaml",)}
EXPERIMENTS = available()
KINDS = ("empty", "nan", "diverged")
STEPS = (0, 10, 20)


@functools.cache
def _config(which: str) -> dict:
    return load_config(*CONFIGS[which])


@functools.cache
def _checked(which: str) -> dict:
    """The resolved configuration, after :func:`bilevel.experiments.check_config` (once per configuration)."""
    return check_config(_config(which))


def _values(kind: str) -> tuple[list[float], str]:
    return {"nan": ([np.nan] * len(STEPS), "completed"), "finite": ([1.0, 0.5, 0.25], "completed"),
            "diverged": ([1.0, 1e300, np.inf], "diverged")}[kind]


def _rows(name: str, exp_cfg: dict, kind: str) -> pd.DataFrame:
    """Per-seed result rows (the schema of bilevel.results) for every label, seed, phase and declared metric;
    in the "nan" kind, times and oracle counts are NaN as well (nothing measured at all)."""
    experiment = get(name)
    values, status = _values(kind)
    scale = np.nan if kind == "nan" else 1.0
    rows = []
    for label, entry in exp_cfg["methods"].items():
        for seed in exp_cfg["seeds"]:
            for phase in experiment.job_phases(exp_cfg):
                for metric in experiment.metrics:
                    for k, (step, value) in enumerate(zip(STEPS, values, strict=True)):
                        rows.append({"experiment": name, "phase": phase, "problem": exp_cfg["problem"]["name"],
                                     "dataset": "", "stand_in": "", "method": label, "method_name": entry["method"],
                                     "params": "{}", "seed": seed, "step": step, "time": 0.01 * step * scale,
                                     **{c: k * (i + 1) * scale for i, c in enumerate(COUNT_COLUMNS)},
                                     "metric": metric, "value": value, "status": status})
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def _aggregate(name: str, exp_cfg: dict, kind: str) -> pd.DataFrame:
    if kind == "empty":
        return aggregate(_rows(name, exp_cfg, "nan")).iloc[0:0]
    return aggregate(_rows(name, exp_cfg, kind))


def _verdicts(name: str, agg: pd.DataFrame, exp_cfg: dict) -> dict[str, Verdict]:
    verdicts = {claim.id: claim.check(agg, exp_cfg) for claim in get(name).claims}
    for cid, verdict in verdicts.items():
        assert isinstance(verdict, Verdict), (cid, verdict)
        assert verdict.holds in (True, False, None) and type(verdict.holds) in (bool, type(None)), (cid, verdict)
        assert isinstance(verdict.measurement, str) and verdict.measurement.strip(), (cid, verdict)
    return verdicts


# ---------------------------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("which", list(CONFIGS))
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_is_configured_and_valid_in_every_config(name, which):
    config = _checked(which)
    assert name in config["experiments"], f"{name} is registered but not configured in the {which} configuration"
    assert config["experiments"][name]["methods"], (name, which)


def test_every_configured_experiment_is_registered():
    for which in CONFIGS:
        assert set(_config(which)["experiments"]) <= set(EXPERIMENTS), which


# ---------------------------------------------------------------------------------------------- definition

@pytest.mark.parametrize("name", EXPERIMENTS)
def test_definition(name):
    experiment = get(name)
    assert experiment.name == name and experiment.claims, name
    assert len({c.id for c in experiment.claims}) == len(experiment.claims)
    assert all(c.id.startswith(f"{name}/") for c in experiment.claims)
    params = list(inspect.signature(experiment.run_job).parameters)
    assert params[1:4] == ["exp_cfg", "label", "seed"], f"run_job(name, exp_cfg, label, seed, ...), got {params}"
    assert {"device", "progress"} <= set(params) and (not experiment.checkpoints or "checkpoint_dir" in params), params
    assert set(experiment.summary_metrics) <= set(experiment.metrics), "the summary reads undeclared metrics"
    assert (ROOT / "notebooks" / f"{experiment.notebook}.ipynb").is_file()
    phases = experiment.job_phases(_config("default")["experiments"][name])
    assert phases and len(set(phases)) == len(phases)


def test_the_registry_collects_every_experiment_module():
    """Every non-infrastructure module defines an experiment, none imports the registry or the package
    (the registry imports them), and the infrastructure modules define none."""
    package = Path(bilevel.experiments.__file__).parent
    for module in experiment_modules():
        found = [v for v in vars(__import__(f"bilevel.experiments.{module}", fromlist=["_"])).values()
                 if isinstance(v, bilevel.experiments.Experiment)]
        assert found, f"bilevel.experiments.{module} defines no Experiment (an infrastructure module? see registry.py)"
        for node in ast.walk(ast.parse((package / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert node.module not in (None, "registry", "pipeline"), f"{module} imports .{node.module or ''}"
    for module in INFRASTRUCTURE:
        assert (package / f"{module}.py").is_file(), module


# ---------------------------------------------------------------------------------------------- claims

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_claims_return_a_verdict_on_data_they_cannot_judge(name, kind):
    exp_cfg = _config("default")["experiments"][name]
    agg = _aggregate(name, exp_cfg, kind)
    assert list(agg.columns) == list(AGGREGATE_COLUMNS)
    verdicts = _verdicts(name, agg, exp_cfg)
    if kind != "diverged":  # nothing measured: nothing to judge
        judged = {cid: v for cid, v in verdicts.items() if v.holds is not None}
        assert not judged, f"claims judged without measurements ({kind} aggregate): {judged}"


@pytest.mark.parametrize("which", ["paper", "test"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_claims_return_a_verdict_under_the_overlays(name, which):
    exp_cfg = _config(which)["experiments"][name]
    for kind in KINDS:
        _verdicts(name, _aggregate(name, exp_cfg, kind), exp_cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_new_method_label_is_handled_by_the_claims(name):
    """A label the claims have never seen (a copy of the first method under a new name) changes nothing
    for them: every claim still returns a Verdict, on finite and on diverged results."""
    exp_cfg = copy.deepcopy(_config("default")["experiments"][name])
    first = next(iter(exp_cfg["methods"].values()))
    exp_cfg["methods"]["a-new-label"] = copy.deepcopy(first)
    for kind in ("finite", "diverged"):
        _verdicts(name, _aggregate(name, exp_cfg, kind), exp_cfg)


# ---------------------------------------------------------------------------------------------- style

def test_fixed_styles_name_registered_methods_or_configured_labels():
    from bilevel.plotting.style import _FIXED

    labels = {lab for which in CONFIGS for exp in _config(which)["experiments"].values() for lab in exp["methods"]}
    stray = sorted(set(_FIXED) - set(bilevel.methods.available()) - labels)
    assert not stray, f"plotting/style.py fixes colours for unregistered, unconfigured labels: {stray}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_curve_of_a_figure_has_its_own_style_with_a_new_method(name):
    from bilevel.plotting.style import figure_styles

    labels = [*_config("default")["experiments"][name]["methods"], "a-new-method"]
    styles = figure_styles(labels)
    assert len({colour for colour, _ in styles.values()}) == len(labels), styles
    assert figure_styles(labels) == styles  # deterministic
