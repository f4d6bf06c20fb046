"""The smoke workflow through a real SLURM controller equals a local run (opt-in: ``pytest -m slurm``).

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``apt-get install -y slurm-wlm munge``);
``tests/slurm/start_cluster.sh`` starts munged + slurmctld + slurmd for one node (this machine).
The SLURM run uses ``profiles/slurm`` as a user would, plus the two flags a cluster without
accounting needs (``--slurm-status-command squeue --slurm-no-account``). Takes about 8 minutes.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm


def _snakemake(args, env, log):
    with open(log, "w") as fh:
        return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=1800).returncode


def test_smoke_workflow_through_slurm_matches_local(tmp_path):
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(t) is None]
    assert not missing, f"install SLURM first (apt-get install -y slurm-wlm munge); missing: {missing}"
    assert os.geteuid() == 0, "the single-node cluster of this test runs its daemons as root"
    cluster = tmp_path / "cluster"
    start = subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh"), str(cluster)], capture_output=True,
                           text=True, timeout=120)
    assert start.returncode == 0, start.stdout + start.stderr
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        smoke = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
        runs = {}
        for name in ("local", "slurm"):
            cfg = {**smoke, **{k: str(tmp_path / name / k) for k in ("results_dir", "figures_dir", "logs_dir")}}
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            args = ["--configfile", str(path), "--cores", "2"]
            if name == "slurm":
                args += ["--profile", "profiles/slurm", "--jobs", "4", "--slurm-status-command", "squeue",
                         "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "5", "--latency-wait", "5"]
            rc = _snakemake(args, env, tmp_path / f"{name}.log")
            assert rc == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
            runs[name] = tmp_path / name / "results_dir"
        submitted = (tmp_path / "slurm.log").read_text()
        assert "external_jobid" in submitted or "SLURM" in submitted
        local = sorted(runs["local"].glob("*/*/seed*.csv"))
        assert len(local) >= 10
        for csv in local:
            other = runs["slurm"] / csv.relative_to(runs["local"])
            pd.testing.assert_frame_equal(pd.read_csv(csv).drop(columns="time"), pd.read_csv(other).drop(columns="time"))
        for fig in ("claims.md", "quadratic_hypergradient.png", "fsba_fig1_minimax.png", "notebooks/fsba.ipynb"):
            assert (tmp_path / "slurm" / "figures_dir" / fig).is_file()
    finally:
        subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh"), str(cluster), "stop"], timeout=60)
