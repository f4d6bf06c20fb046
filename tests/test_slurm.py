"""The smoke workflow through a real SLURM controller equals a local run (opt-in: ``pytest -m slurm``).

Needs root: installs Debian's ``slurm-wlm`` and ``munge`` when missing (``scripts/system_deps.sh slurm``),
then ``tests/slurm/start_cluster.sh`` starts munged + slurmctld + slurmd for one node (this machine).
The SLURM run uses ``profiles/slurm`` as a user would, plus the two flags a cluster without
accounting needs (``--slurm-status-command squeue --slurm-no-account``). The local reference is a
smoke run made here, or the one named by ``BILEVEL_SMOKE_RESULTS`` (the test command passes the
results of its own smoke run, ``.test/results``, instead of running the workflow twice).

``BILEVEL_SLURM_EXPERIMENTS`` (comma-separated) keeps only those experiments of the smoke config: every
SLURM job pays two Snakemake start-ups, so the whole smoke DAG takes about 20 minutes through a 2-core
node; the test command keeps three experiments that still exercise every rule (a CPU run, a GPU run, a
trained classifier; plots, notebooks, and the local bookkeeping rules). Unset: every experiment.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bilevel.experiments import get as get_experiment
from bilevel.experiments.config import load_config, read_yaml
from bilevel.results import provenance_path, without_times

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm


def _snakemake(args, env, log):
    with open(log, "w") as fh:
        return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, timeout=1800).returncode


def test_smoke_workflow_through_slurm_matches_local(tmp_path):
    assert os.geteuid() == 0, "the single-node cluster of this test runs its daemons as root"
    deps = subprocess.run(["bash", str(ROOT / "scripts/system_deps.sh"), "slurm"], capture_output=True, text=True,
                          timeout=900)
    assert deps.returncode == 0, deps.stderr
    cluster = tmp_path / "cluster"
    start = subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh"), str(cluster)], capture_output=True,
                           text=True, timeout=120)
    assert start.returncode == 0, start.stdout + start.stderr
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        overlay = read_yaml(ROOT / ".test/config/config.yaml")  # merged over config/config.yaml
        smoke = load_config(ROOT / ".test/config/config.yaml")
        keep = [e for e in os.environ.get("BILEVEL_SLURM_EXPERIMENTS", "").split(",") if e]
        if keep:
            unknown = sorted(set(keep) - set(smoke["experiments"]))
            assert not unknown, f"BILEVEL_SLURM_EXPERIMENTS: {unknown} not in the smoke config"
            overlay["experiments"].update({name: None for name in smoke["experiments"] if name not in keep})
            smoke["experiments"] = {name: smoke["experiments"][name] for name in keep}
        runs = {}
        names = ("local", "slurm")
        if os.environ.get("BILEVEL_SMOKE_RESULTS"):
            runs["local"] = Path(os.environ["BILEVEL_SMOKE_RESULTS"]).resolve()
            assert runs["local"].is_dir(), f"BILEVEL_SMOKE_RESULTS={runs['local']} is not a directory"
            names = ("slurm",)
        for name in names:
            cfg = {**overlay, **{k: str(tmp_path / name / k) for k in ("results_dir", "figures_dir", "logs_dir")}}
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            args = ["--configfile", str(path), "--cores", "2"]
            if name == "slurm":
                args += ["--profile", "profiles/slurm", "--jobs", "4", "--slurm-status-command", "squeue",
                         "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "5", "--latency-wait", "5"]
            rc = _snakemake(args, env, tmp_path / f"{name}.log")
            assert rc == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
            runs[name] = tmp_path / name / "results_dir"
        submitted = (tmp_path / "slurm.log").read_text()
        assert "external_jobid" in submitted or "SLURM" in submitted
        local = sorted(csv for csv in runs["local"].glob("*/*/seed*.csv") if csv.parts[-3] in smoke["experiments"])
        assert len(local) >= 10
        assert len(list(runs["slurm"].glob("*/*/seed*.csv"))) == len(local)
        job_ids = set()
        for csv in local:
            other = runs["slurm"] / csv.relative_to(runs["local"])
            pd.testing.assert_frame_equal(without_times(pd.read_csv(csv)), without_times(pd.read_csv(other)))
            # computed inside a SLURM job; GPU rules' jobs were allocated the node's GPU (--gpus=1)
            job = json.loads(provenance_path(other).read_text())["scheduler"]
            assert job and job["slurm_job_id"], f"{other}: not computed in a SLURM job"
            job_ids.add(job["slurm_job_id"])
            gpu = get_experiment(csv.parts[-3]).gpu
            assert (job.get("slurm_gpus_on_node") == "1") == gpu, f"{other}: GPU allocation {job} (GPU rule: {gpu})"
            assert not json.loads(provenance_path(csv).read_text()).get("scheduler"), f"{csv}: local run in SLURM?"
        assert len(job_ids) == len(local), "each run job is its own SLURM job"
        figures = tmp_path / "slurm" / "figures_dir"
        for fig in ["claims.md", "runtimes.md", "notebooks/fsba.ipynb"] + [f"{e}.png" for e in smoke["experiments"]]:
            assert (figures / fig).is_file(), fig
    finally:
        subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh"), str(cluster), "stop"], timeout=60)
