"""Shared fixtures: small float64 problems with closed forms."""

import pytest
import torch

import bilevel


@pytest.fixture(scope="session")
def quad100():
    """The 100x100 quadratic of the foundation issue (p = d = 100), well conditioned."""
    return bilevel.problems.make("quadratic", dim_inner=100, dim_outer=100, n_samples_inner=1024,
                                 n_samples_outer=1024, mu_inner=0.1, seed=0)


@pytest.fixture(scope="session")
def quad_small():
    return bilevel.problems.make("quadratic", dim_inner=6, dim_outer=4, n_samples_inner=64, n_samples_outer=32,
                                 mu_inner=0.3, seed=3)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.fixture(scope="session")
def workflow_rules(tmp_path_factory):
    """Snakemake's own rule objects as data (``bilevel.workflow.describe_rules``, written when
    ``BILEVEL_DESCRIBE_RULES`` is set), for the smoke configuration: name -> conda environment (a path, or
    experiment -> path where it depends on the experiment), threads, resources, local or not."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("rules") / "rules.json"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "--configfile",
                           str(root / ".test/config/config.yaml")], cwd=root, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "BILEVEL_DESCRIBE_RULES": str(out)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())
