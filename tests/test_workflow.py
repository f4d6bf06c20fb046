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
from bilevel.experiments.config import load_config, read_yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = load_config(ROOT / ".test/config/config.yaml")


def _tiny_config(tmp_path):
    """An overlay (merged over config/config.yaml, as --configfile): the smoke config's
    quadratic_hypergradient with methods itd and aid-cg only, tinier budgets, its own output folders."""
    cfg = read_yaml(ROOT / ".test/config/config.yaml")
    exp = cfg["experiments"]["quadratic_hypergradient"]
    exp["methods"].pop("aid-diverging")  # the smoke overlay's own entry
    exp["methods"].update({label: None for label in load_config()["experiments"]["quadratic_hypergradient"]["methods"]
                           if label not in ("itd", "aid-cg")})
    exp["methods"]["itd"] = {"params": {}}
    exp["tuning"] = None  # no tuning stage: the configured values (its selection would come from a run)
    exp["hypergradient"]["budgets"] = [1, 5]
    exp["optimization"]["max_iters"] = 5
    for key in ("results_dir", "figures_dir", "logs_dir"):
        cfg[key] = str(tmp_path / key)
    return cfg


def test_overlays_merge_over_the_default(tmp_path):
    """A --configfile is merged over config/config.yaml (Snakemake's semantics); null removes a key,
    ``enabled: false`` defines a method without running it; a dry run plans exactly the resolved jobs."""
    cfg = _tiny_config(tmp_path)
    resolved = load_config(_write(tmp_path, cfg))
    exp = resolved["experiments"]["quadratic_hypergradient"]
    assert list(exp["methods"]) == ["itd", "aid-cg"]
    assert exp["methods"]["itd"] == load_config()["experiments"]["quadratic_hypergradient"]["methods"]["itd"]
    assert exp["optimization"]["max_iters"] == 5  # the overlay's value; the seeds come from the default:
    assert exp["seeds"] == load_config()["experiments"]["quadratic_hypergradient"]["seeds"] == [1]
    assert set(resolved["experiments"]) == set(load_config()["experiments"])
    assert "cubic-100" not in load_config()["experiments"]["fsba_fig8_cubic"]["methods"]
    assert "cubic-100" in load_config(ROOT / "config/paper.yaml")["experiments"]["fsba_fig8_cubic"]["methods"]
    assert "stands_in_for" not in load_config(ROOT / "config/paper.yaml")["experiments"][
        "fsba_fig3_regularization"]["problem"]["params"]
    bad = {"experiments": {"fsba_fig8_cubic": {"methods": {"cubic-100": {"enabled": "yes"}}}}}
    with pytest.raises(ConfigError, match=r"fsba_fig8_cubic\.methods\.cubic-100\.enabled"):
        load_config(_write(tmp_path, bad))
    typo = {"experiments": {"fsba_fig7_penalty": {"methods": {"lam100O": None}}}}
    with pytest.raises(ConfigError, match=r"fsba_fig7_penalty\.methods\.lam100O: null removes a key"):
        load_config(_write(tmp_path, typo))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "experiments: [unclosed"))


def _write(tmp_path, cfg, name="overlay.yaml"):
    path = tmp_path / name
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


def _dry_run(tmp_path, cfg):
    path = _write(tmp_path, cfg, "bad.yaml")
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path),
                           "-d", str(tmp_path / "wd"), "-s", str(ROOT / "Snakefile")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.workflow
@pytest.mark.parametrize(("mutate", "key"), [
    (lambda e: e["methods"]["itd"].update(method="itd-typo"), "method"),
    (lambda e: e["methods"]["itd"]["params"].update(inner_lr=-0.1), "inner_lr"),
    (lambda e: e["methods"]["itd"]["params"].update(inner_steps=2.5), "inner_steps"),
    (lambda e: e["methods"]["aid-cg"]["params"].update(solver="cholesky"), "solver"),
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


def test_method_names_and_limits_have_one_source():
    """The schema lists no method names, solver names or parameter limits: the registry and the method
    classes are their one source (an unknown method or a bad value is refused by check_config, naming
    the key: test_bad_config_fails_before_any_job)."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert "enum" not in schema["$defs"]["method"]["properties"]["method"]
    assert "properties" not in schema["$defs"]["params"]


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


def test_every_cluster_job_declares_its_resources(workflow_rules):
    """What the SLURM profile submits (every rule but the localrules and the target rules) declares
    threads, mem_mb and runtime, and exactly the GPU experiments' jobs a GPU: the profile's defaults never
    decide a job. Read from Snakemake's rule objects (the job rule's values are given per experiment)."""
    import bilevel.experiments

    local = {name for name, r in workflow_rules.items() if r["local"]}
    submitted = {name: r for name, r in workflow_rules.items() if not r["local"] and name not in ("all", "download")}
    assert set(submitted) == {"run_job", "tune_job", "train_classifier", "plot", "notebook"}
    for name, rule in submitted.items():
        assert isinstance(rule["threads"], int) and rule["threads"] >= 1, f"rule {name}: no threads"
        for resource in ("mem_mb", "runtime"):
            values = rule["resources"].get(resource)
            values = values.values() if isinstance(values, dict) else [values]
            assert all(isinstance(v, int) and v > 0 for v in values), f"rule {name}: no {resource} resource"
    for job_rule in ("run_job", "tune_job"):  # a tuning job runs on the device its figure's jobs run on
        gpu = workflow_rules[job_rule]["resources"]["gpu"]
        assert gpu == {e: int(bilevel.experiments.get(e).gpu) for e in SMOKE["experiments"]}
        assert any(gpu.values()) and not all(gpu.values())
    assert all("gpu" not in r["resources"] for name, r in submitted.items() if name not in ("run_job", "tune_job"))
    assert {"claims", "fetch_dataset", "select", "tune"} <= local


@pytest.mark.workflow
def test_a_few_shot_job_gives_the_same_numbers_through_the_rule_and_the_cli(tmp_path):
    """Same seed, same numbers whichever way a job starts: the rule (Snakemake, its declared threads) and
    ``bilevel run`` in a process whose torch would use more threads both pin ``torch_threads`` (float32
    few-shot networks are where thread counts show)."""
    import os

    overlay = _write(tmp_path, {**{k: str(tmp_path / k) for k in ("results_dir", "figures_dir", "logs_dir")},
                                "device": "cpu", "notebooks": False})
    smoke = ROOT / ".test/config/config.yaml"
    target = tmp_path / "results_dir" / "fsba_fig4_meta" / "itd" / "seed1.csv"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run([sys.executable, "-m", "snakemake", str(target), "--cores", "2", "--quiet", "rules", "--configfile",
                    str(smoke), str(overlay)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    cli_out = tmp_path / "cli.csv"
    subprocess.run([sys.executable, "-m", "bilevel.cli", "run", "fsba_fig4_meta", "--method", "itd", "--seed", "1",
                    "--config", str(smoke), "--config", str(overlay), "--out", str(cli_out), "--quiet"],
                   cwd=ROOT, env={**env, "OMP_NUM_THREADS": "2"}, check=True, capture_output=True, timeout=600)
    rule, cli = pd.read_csv(target), pd.read_csv(cli_out)
    cols = [c for c in rule.columns if c != "time"]
    pd.testing.assert_frame_equal(rule[cols], cli[cols])
    for csv in (target, cli_out):
        record = yaml.safe_load(csv.with_name(csv.stem + ".provenance.json").read_text())
        assert record["device"]["torch_threads"] == 1


#: a value out of its declared range, per registered problem (a new problem must add its case here)
OUT_OF_RANGE = {
    "blackbox_attack": ("resolution", 5), "data_cleaning": ("noise", 1.5), "feature_regularization": ("model_tol", -1.0),
    "few_shot": ("n_way", 0), "l2_logistic": ("train_fraction", 1.5), "minimax_w": ("init", 3),
    "online_attack": ("stages", 11), "online_loss_tuning": ("phase_ratios", [0.0]), "online_quadratic": ("dim", 0),
    "quadratic": ("dim_inner", -3), "quadratic_file": ("path", 3), "strict_saddle": ("dim", 0),
}


def _problem_overlay(problem: str, key: str, value) -> tuple[dict, str]:
    """An overlay setting ``key`` of ``problem`` to ``value`` in the first default experiment with that
    problem (else in zoba_quadratic, its problem replaced), and the config key the error must name."""
    default = load_config()["experiments"]
    name = next((n for n, e in default.items() if e["problem"]["name"] == problem), "zoba_quadratic")
    params = {k: None for k in default[name]["problem"].get("params", {})} if default[name]["problem"]["name"] != problem \
        else {}
    params[key] = value
    return ({"experiments": {name: {"problem": {"name": problem, "params": params}}}},
            f"experiments.{name}.problem.params.{key}")


def _one_screen_refusal(tmp_path, overlay: dict, key: str) -> str:
    proc = _dry_run(tmp_path, overlay)
    said = proc.stderr + proc.stdout
    assert proc.returncode != 0, said[-1500:]
    assert key in said, said[-1500:]
    assert len(said.splitlines()) <= 25 and "$schema" not in said, "a short message, not the schema"
    assert not (tmp_path / "wd" / "results").exists()
    return said


def test_every_registered_problem_has_an_out_of_range_case():
    from bilevel import problems

    assert set(OUT_OF_RANGE) == set(problems.available())
    for name in problems.available():  # every parameter has a declared limit (dtype and device aside)
        factory = problems.get_factory(name)
        undeclared = [p for p in __import__("inspect").signature(factory).parameters
                      if p not in factory.limits and p not in ("dtype", "device")]
        assert not undeclared, f"{name}: no declared limit for {undeclared}"


@pytest.mark.workflow
@pytest.mark.parametrize("problem", sorted(OUT_OF_RANGE))
def test_a_problem_parameter_out_of_range_fails_the_dry_run(tmp_path, problem):
    """Each registered problem's parameter out of range: `snakemake -n` refuses at parse time, naming the key,
    through the same declared limits the factory checks (one source of truth)."""
    key, value = OUT_OF_RANGE[problem]
    overlay, config_key = _problem_overlay(problem, key, value)
    said = _one_screen_refusal(tmp_path, overlay, config_key)
    assert f"problem {problem}" in said
    from bilevel import problems  # the library refuses the same value with the same requirement

    with pytest.raises((ValueError, TypeError), match=f"parameter {key} "):
        problems.get_factory(problem)(**{key: value})


@pytest.mark.workflow
@pytest.mark.parametrize(("overlay", "key"), [
    ({"experiments": {"zoba_quadratic": {"problem": {"params": {"mu_inner": -0.3}}}}},
     "experiments.zoba_quadratic.problem.params.mu_inner"),
    ({"experiments": {"fsba_fig2_cleaning": {"cases": {"breast-cancer-p0.25": {"noise": 1.5}}}}},
     "experiments.fsba_fig2_cleaning.cases.breast-cancer-p0.25.noise"),
    ({"resuls_dir": "x"}, "resuls_dir: unknown key"),
    ({"experiments": {"zoba_quadratic": {"optimization": {"max_iters": 2.5}}}},
     "experiments.zoba_quadratic.optimization.max_iters"),
    ({"experiments": {"zoba_quadratic": {"methods": {"zmdsba": {"params": {"inner_lr": True}}}}}},
     "experiments.zoba_quadratic.methods.zmdsba.params"),
])
def test_bad_values_fail_the_dry_run_in_one_screen(tmp_path, overlay, key):
    _one_screen_refusal(tmp_path, overlay, key)


def test_the_cli_validates_its_config_through_the_schema(tmp_path, capsys):
    """`bilevel run --config` refuses what the Snakefile refuses (a typo'd key, 2.5 iterations, a bool step)
    before running, with the key named; `bilevel check` names the file and line of a YAML error."""
    out = tmp_path / "x.csv"
    for overlay, key in (({"experiments": {"zoba_quadratic": {"optimizaton": {"max_iters": 2}}}}, "optimizaton"),
                         ({"experiments": {"zoba_quadratic": {"optimization": {"max_iters": 2.5}}}}, "max_iters"),
                         ({"experiments": {"zoba_quadratic": {"methods": {"zmdsba": {"params": {"inner_lr": True}}}}}},
                          "inner_lr")):
        path = _write(tmp_path, overlay, "cli.yaml")
        assert cli_main(["run", "zoba_quadratic", "--method", "zoba", "--seed", "1", "--out", str(out), "--config",
                         str(path), "--quiet"]) == 2
        assert key in capsys.readouterr().err
        assert not out.exists()
    broken = _write(tmp_path, "experiments:\n  zoba_quadratic:\n    seeds: [1, 2\n  foo: 1\n", "broken.yaml")
    assert cli_main(["check", "--config", str(broken)]) == 2
    assert f"{broken}: not valid YAML: line 4, column 6" in capsys.readouterr().err
    assert cli_main(["check"]) == 0


def test_the_cli_refuses_an_unwritable_output_before_running(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        cfg_path = _write(tmp_path, _tiny_config(tmp_path), "c.yaml")
        code = cli_main(["run", "quadratic_hypergradient", "--method", "itd", "--seed", "1", "--out",
                         str(locked / "sub" / "x.csv"), "--config", str(cfg_path), "--quiet"])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    if code == 0:  # root ignores permissions: nothing to refuse
        assert (locked / "sub" / "x.csv").exists()
    else:
        assert code == 2 and "cannot write --out" in err and "Traceback" not in err
