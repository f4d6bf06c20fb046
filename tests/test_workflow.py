"""Workflow level: config validation before any job, CLI, reproducible result files, README example."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bilevel.cli import main as cli_main
from bilevel.experiments import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())


def _tiny_config(tmp_path):
    cfg = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    exp = cfg["experiments"]["quadratic_hypergradient"]
    exp["methods"] = {k: exp["methods"][k] for k in ("itd", "aid-cg")}
    exp["hypergradient"]["budgets"] = [1, 5]
    exp["optimization"]["max_iters"] = 5
    for key in ("results_dir", "figures_dir", "logs_dir"):
        cfg[key] = str(tmp_path / key)
    return cfg


def _dry_run(tmp_path, cfg):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path),
                           "-d", str(tmp_path / "wd"), "-s", str(ROOT / "Snakefile")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.workflow
@pytest.mark.parametrize(("mutate", "key"), [
    (lambda e: e["methods"]["itd"].update(method="itd-typo"), "method"),
    (lambda e: e["methods"]["itd"]["params"].update(inner_lr=-0.1), "inner_lr"),
])
def test_bad_config_fails_before_any_job(tmp_path, mutate, key):
    cfg = _tiny_config(tmp_path)
    mutate(cfg["experiments"]["quadratic_hypergradient"])
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert not (tmp_path / "results_dir").exists()


def test_semantic_checks_name_the_key():
    bad = yaml.safe_load(yaml.safe_dump(SMOKE))
    bad["experiments"]["quadratic_hypergradient"]["methods"]["itd"]["params"]["inner_steps"] = -3
    with pytest.raises(ConfigError, match=r"methods\.itd\.params.*inner_steps"):
        check_config(bad)
    bad = yaml.safe_load(yaml.safe_dump(SMOKE))
    bad["experiments"]["quadratic_hypergradient"]["problem"]["params"]["dim_iner"] = 3
    with pytest.raises(ConfigError, match="dim_iner"):
        check_config(bad)


def test_schema_method_enum_is_the_registry():
    import bilevel

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert sorted(schema["$defs"]["method"]["properties"]["method"]["enum"]) == bilevel.methods.available()


def test_cli_same_seed_identical_csv_apart_from_time(tmp_path, capsys):
    cfg = _tiny_config(tmp_path)
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    outs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / f"{name}.csv"
        assert cli_main(["run", "quadratic_hypergradient", "--method", "itd", "--seed", str(seed), "--out", str(out),
                         "--config", str(cfg_path), "--quiet"]) == 0
        outs.append(pd.read_csv(out).drop(columns="time"))
        assert (tmp_path / f"{name}.provenance.json").is_file()
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert not outs[0].equals(outs[2])
    assert cli_main(["list"]) == 0
    assert "aid" in capsys.readouterr().out
    assert cli_main(["run", "quadratic_hypergradient", "--method", "nope", "--seed", "1", "--out",
                     str(tmp_path / "x.csv"), "--config", str(cfg_path), "--quiet"]) == 2


def test_readme_user_problem_example():
    """The README's ten-line example of a user-defined problem runs as written."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- user-problem-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README has no user-problem example block"
    code = block.group(1)
    assert len([ln for ln in code.strip().splitlines() if ln.strip()]) <= 10
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    result, A, target = namespace["result"], namespace["A"], namespace["target"]
    assert result.status == "completed"
    assert float((result.x - A @ target).norm() / (A @ target).norm()) < 1e-6  # x* = A·target


def test_tables_render_from_their_data_files():
    from bilevel.experiments import tables

    assert "fsba_complexity" in tables.available()
    md = tables.render("fsba_complexity", "md")
    assert "| LFSBA | bilevel |" in md and "Õ(√m ε^-1.5)" in md
    tex = tables.render("fsba_complexity", "tex")
    assert r"\begin{tabular}{llllll}" in tex and r"fsba\_complexity" in tex
    bad = yaml.safe_load(yaml.safe_dump(SMOKE))
    bad["tables"] = ["no_such_table"]
    with pytest.raises(ConfigError, match=r"tables\[0\]: unknown table"):
        check_config(bad)


def test_every_cluster_job_declares_its_resources():
    """What the SLURM profile submits (every rule but the localrules and the target rules) declares
    threads, mem_mb and runtime, and the GPU rule a GPU: the profile's defaults never decide a job."""
    text = "\n".join(smk.read_text() for smk in sorted((ROOT / "workflow/rules").glob("*.smk")))
    local = set()
    for block in re.findall(r"^localrules:\n((?:    .*\n)+)", text, re.M):
        local |= set(re.findall(r"^    (\w+),", block, re.M))
    rules = dict(re.findall(r"^rule (\w+):\n((?:(?:    .*)?\n)+)", text, re.M))
    submitted = {name: body for name, body in rules.items() if name not in local and "output:" in body}
    assert {"run_job", "run_gpu_job", "train_classifier", "plot", "notebook"} <= set(submitted)
    for name, body in submitted.items():
        assert re.search(r"^    threads: \d+", body, re.M), f"rule {name}: no threads"
        for resource in ("mem_mb", "runtime"):
            assert re.search(rf"^        {resource}=\d+", body, re.M), f"rule {name}: no {resource} resource"
        assert ("gpu=1" in body) == (name == "run_gpu_job"), f"rule {name}: GPU resource"
    assert {"aggregate", "summary", "claims", "fetch_dataset"} <= local
