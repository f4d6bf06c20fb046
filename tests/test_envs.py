"""Conda environments (used with --sdm conda by users; conda cannot run here): lint them."""

import re
from pathlib import Path

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


def test_every_rule_names_an_existing_env():
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, re.M)
        envs = re.findall(r'conda:\s*\n\s*"([^"]+)"', text)
        assert len(envs) == len(rules), f"{smk.name}: every rule needs a conda: environment"
        for env in envs:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} not found"
