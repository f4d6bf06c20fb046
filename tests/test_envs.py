"""Conda environments (used with --sdm conda by users; conda cannot run here): lint them."""

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_env_pins_versions_that_agree_with_requirements():
    pins = _requirements()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs
    for path in envs:
        env = yaml.safe_load(path.read_text())
        assert env["name"].startswith("bilevel-") and "conda-forge" in env["channels"], path
        deps = env["dependencies"]
        assert "python=3.11" in deps, path
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        for spec in pip:
            if spec.startswith("--"):  # pip options (e.g. the CUDA wheel index of envs/gpu.yaml)
                assert spec.startswith("--extra-index-url https://"), f"{path.name}: unexpected pip option {spec}"
                continue
            name, _, version = spec.partition("==")
            assert version, f"{path.name}: {spec} is not pinned"
            assert pins.get(name.lower()) == version, f"{path.name}: {spec} disagrees with requirements.txt"


def test_every_rule_names_an_existing_env(workflow_rules):
    """Every rule with a job (all but the target rules) declares a conda environment that exists; the job
    rule's comes from its experiment: envs/gpu.yaml exactly for GPU experiments."""
    import bilevel.experiments

    for name, rule in workflow_rules.items():
        if name in ("all", "download"):
            continue
        env = rule["conda"]
        assert env is not None, f"rule {name}: no conda: environment"
        for path in (env.values() if isinstance(env, dict) else [env]):
            assert Path(path).is_file() and Path(path).parent == ROOT / "envs", f"rule {name}: {path}"
    envs = workflow_rules["run_job"]["conda"]
    assert {e: Path(p).name for e, p in envs.items()} == {
        e: "gpu.yaml" if bilevel.experiments.get(e).gpu else "cpu.yaml" for e in envs}
    assert Path(workflow_rules["plot"]["conda"]).name == "plot.yaml"
    assert Path(workflow_rules["notebook"]["conda"]).name == "notebook.yaml"


def _guard():
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    try:
        import _env_guard
    finally:
        sys.path.pop(0)
    return _env_guard


def test_the_guard_finds_every_rules_environment(workflow_rules):
    guard = _guard()
    assert guard.rule_env(workflow_rules, "plot").name == "plot.yaml"
    assert guard.rule_env(workflow_rules, "run_job", "fsba_fig4_meta").name == "gpu.yaml"
    assert guard.rule_env(workflow_rules, "run_job", "zoba_attack").name == "cpu.yaml"
    with pytest.raises(KeyError, match="all declares no conda"):
        guard.rule_env(workflow_rules, "all")


def test_the_guard_blocks_packages_outside_the_rules_environment():
    """In a fresh interpreter: under rule plot's guard matplotlib imports, scikit-learn does not."""
    rules = {"plot": {"conda": str(ROOT / "envs/plot.yaml")}}
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "workflow/scripts")!r})
import _env_guard
_env_guard.install("plot", {rules!r})
import importlib.metadata, importlib.util
import matplotlib.pyplot, pandas, torch
assert importlib.util.find_spec("sklearn") is None
assert importlib.metadata.version("matplotlib")
try:
    importlib.metadata.version("scikit-learn")
except importlib.metadata.PackageNotFoundError:
    print("NO METADATA scikit-learn")
try:
    import sklearn
except ModuleNotFoundError as err:
    print("BLOCKED", err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BLOCKED No module named 'sklearn'" in out.stdout and "NO METADATA scikit-learn" in out.stdout
    assert "env guard: sklearn (distribution scikit-learn) is hidden: not in plot.yaml" in out.stderr


def test_installed_versions_are_the_pinned_ones():
    """The environment the tests and the workflow run in here is the one the env files pin."""
    for name, version in _requirements().items():
        installed = metadata.version(name).split("+")[0]  # torch 2.13.0+cpu
        assert installed == version, f"{name}: installed {installed}, requirements.txt pins {version}"
