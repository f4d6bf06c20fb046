"""The tuning stage: grids, scores, choices, edge flags, held-out seeds, committed selections."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bilevel.experiments import ConfigError, check_config, tuning
from bilevel.experiments import get as get_experiment
from bilevel.experiments.config import load_config
from bilevel.experiments.pipeline import execute_job, execute_tuning_job, write_selection

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default": (), "paper": (ROOT / "config/paper.yaml",), "smoke": (ROOT / ".test/config/config.yaml",)}


def _rows(values, metric="m", phase="p", status="completed"):
    return pd.DataFrame({"phase": phase, "step": range(len(values)), "metric": metric, "value": values,
                         "status": status})


def test_cells_are_the_full_factorial_in_key_order():
    entry = {"tune": {"a": [1, 2], "b": [0.1, 0.2, 0.3]}}
    got = tuning.cells(entry)
    assert [name for name, _ in got] == [f"c{i}" for i in range(6)]
    assert got[0][1] == {"a": 1, "b": 0.1} and got[2][1] == {"a": 1, "b": 0.3} and got[5][1] == {"a": 2, "b": 0.3}
    assert tuning.cells({}) == [("c0", {})]
    tied = tuning.cells({"tune": {"beta+delta": [0.1, 0.2]}})
    assert tied == [("c0", {"beta": 0.1, "delta": 0.1}), ("c1", {"beta": 0.2, "delta": 0.2})]


def test_cell_values_win_over_the_phase_sections_shared_params():
    exp = {"methods": {"m": {"method": "itd", "params": {"outer_lr": 1.0}}},
           "optimization": {"params": {"outer_lr": 0.5}}}
    out = tuning.with_params(exp, "m", {"outer_lr": 3.0})
    assert out["methods"]["m"]["params"]["outer_lr"] == 3.0
    assert out["methods"]["m"]["optimization_params"]["outer_lr"] == 3.0  # applied after optimization.params
    assert exp["methods"]["m"]["params"]["outer_lr"] == 1.0  # the input is not modified


def test_tuning_config_uses_tuning_seeds_and_budget():
    exp = {"seeds": [1, 2], "methods": {"m": {"method": "itd", "tune": {"outer_lr": [1.0, 2.0]}}},
           "optimization": {"max_iters": 100, "eval_every": 10},
           "tuning": {"seeds": [100], "metric": "x", "budget": {"max_iters": 20}}}
    out = tuning.tuning_config(exp, "m", "c1")
    assert out["seeds"] == [100] and out["optimization"] == {"max_iters": 20, "eval_every": 10}
    assert out["methods"]["m"]["params"] == {"outer_lr": 2.0}
    with pytest.raises(KeyError, match="no grid cell 'c7'"):
        tuning.tuning_config(exp, "m", "c7")


def test_run_score_final_mean_and_divergence():
    assert tuning.run_score(_rows([3.0, 2.0, 1.0]), "m", "min") == 1.0
    assert tuning.run_score(_rows([3.0, 2.0, 1.0]), "m", "min", at="mean") == 2.0
    two = pd.concat([_rows([5.0, 1.0], phase="a"), _rows([5.0, 3.0], phase="b")])
    assert tuning.run_score(two, "m", "min") == 2.0  # mean over phases
    assert tuning.run_score(_rows([1.0, 0.5], status="diverged"), "m", "min") == math.inf
    assert tuning.run_score(_rows([1.0, float("nan")]), "m", "max") == -math.inf
    assert tuning.run_score(_rows([1.0]), "other", "min") == math.inf  # metric not recorded


def _exp(mode="min"):
    return {"seeds": [1], "problem": {"name": "quadratic"},
            "tuning": {"seeds": [100, 101], "metric": "m", "mode": mode},
            "methods": {"a": {"method": "itd", "tune": {"outer_lr": [0.1, 1.0, 10.0]}},
                        "b": {"method": "itd", "fixed": "a paper's setting"}}}


def test_select_chooses_the_best_median_cell_and_flags_grid_edges():
    scores = {"a": {"c0": {100: 3.0, 101: 5.0}, "c1": {100: 1.0, 101: 9.0}, "c2": {100: 2.0, 101: 2.0}}}
    sel = tuning.select("e", _exp(), scores)
    a = sel["methods"]["a"]
    assert [c["score"] for c in a["cells"]] == [4.0, 5.0, 2.0]
    assert a["choice"] == "c2" and a["params"] == {"outer_lr": 10.0} and a["edge"] == ["outer_lr"]
    assert sel["methods"]["b"] == {"fixed": "a paper's setting", "params": {}}
    assert sel["seeds"] == [100, 101] and sel["key"] == tuning.selection_key(_exp())
    inner = tuning.select("e", _exp(), {"a": {"c0": {100: 3.0}, "c1": {100: 1.0}, "c2": {100: 2.0}}})
    assert inner["methods"]["a"]["edge"] == [] and inner["methods"]["a"]["choice"] == "c1"
    maxed = tuning.select("e", _exp("max"), {"a": {"c0": {100: 3.0}, "c1": {100: 1.0}, "c2": {100: 2.0}}})
    assert maxed["methods"]["a"]["choice"] == "c0"


def test_select_ties_take_the_first_cell_and_all_diverged_is_flagged():
    tie = tuning.select("e", _exp(), {"a": {"c0": {100: 1.0}, "c1": {100: 1.0}, "c2": {100: 1.0}}})
    assert tie["methods"]["a"]["choice"] == "c0"
    bad = tuning.select("e", _exp(), {"a": {c: {100: math.inf} for c in ("c0", "c1", "c2")}})
    assert bad["methods"]["a"]["all_diverged"] and bad["methods"]["a"]["choice"] == "c0"
    assert "all cells diverged" in "\n".join(tuning.selection_markdown(bad, "x.json"))


def test_check_tuning_refuses_figure_seeds_untuned_methods_and_bad_cells():
    exp = _exp()
    tuning.check_tuning("e", exp)
    shared = copy.deepcopy(exp)
    shared["tuning"]["seeds"] = [1, 100]
    with pytest.raises(ConfigError, match=r"experiments\.e\.tuning\.seeds: \[1\] are also figure seeds"):
        tuning.check_tuning("e", shared)
    bare = copy.deepcopy(exp)
    del bare["methods"]["b"]["fixed"]
    with pytest.raises(ConfigError, match=r"experiments\.e\.methods\.b: a method of a tuned experiment needs a grid"):
        tuning.check_tuning("e", bare)
    negative = copy.deepcopy(exp)
    negative["methods"]["a"]["tune"] = {"outer_lr": [-1.0]}
    with pytest.raises(ConfigError, match=r"experiments\.e\.methods\.a\.tune: cell c0"):
        tuning.check_tuning("e", negative)
    criterion = copy.deepcopy(exp)
    criterion["tuning"]["statistic"] = "best"
    with pytest.raises(ConfigError, match=r"tuning\.statistic: must be one of median, mean"):
        tuning.check_tuning("e", criterion)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_no_tuning_seed_is_a_figure_seed_in_any_config(name):
    config = load_config(*CONFIGS[name])
    tuned = {e: exp for e, exp in config["experiments"].items() if tuning.tuned(exp)}
    if name != "smoke":
        assert tuned, "the config tunes no experiment"
    for e, exp in tuned.items():
        assert not set(exp["tuning"]["seeds"]) & set(exp["seeds"]), e
    check_config(config)  # the parse-time check says the same


@pytest.mark.parametrize("name", ["default", "paper"])
def test_every_comparative_figure_has_a_tuning_stage(name):
    config = load_config(*CONFIGS[name])
    for e, exp in config["experiments"].items():
        if getattr(get_experiment(e), "comparative", True):
            assert tuning.tuned(exp), f"{name}: experiments.{e} compares methods but has no tuning section"


def test_the_default_configs_committed_selections_exist_and_match_it():
    config = load_config()
    config["selections_dir"] = str(ROOT / "config" / "selections")
    tuning.check_committed(config)  # raises ConfigError naming a missing or stale selection


def test_a_stale_committed_selection_is_refused_by_name(tmp_path):
    config = {"selections": "committed", "selections_dir": str(tmp_path), "experiments": {"e": _exp()}}
    with pytest.raises(ConfigError, match="its selection .*e.json is missing"):
        tuning.check_committed(config)
    sel = tuning.select("e", _exp(), {"a": {"c0": {100: 3.0}, "c1": {100: 1.0}, "c2": {100: 2.0}}})
    (tmp_path / "e.json").write_text(json.dumps(sel))
    tuning.check_committed(config)
    config["experiments"]["e"]["methods"]["a"]["tune"]["outer_lr"] = [0.1, 1.0]
    with pytest.raises(ConfigError, match="made for another configuration of this experiment"):
        tuning.check_committed(config)


def test_tuning_jobs_select_and_the_figure_job_runs_the_choice(tmp_path):
    """End to end on a tiny quadratic: tuning jobs on the held-out seed, the selection, then a figure job
    whose provenance and parameters carry the chosen value."""
    exp = {"problem": {"name": "quadratic", "params": {"dim_inner": 3, "dim_outer": 2, "n_samples_inner": 16,
                                                        "n_samples_outer": 16, "mu_inner": 0.5}},
           "seeds": [1], "tuning": {"seeds": [100], "metric": "hypergrad_norm2"},
           "methods": {"itd": {"method": "itd", "params": {"inner_lr": 0.5, "inner_steps": 5},
                               "tune": {"outer_lr": [1.0e-4, 0.3]}}},
           "optimization": {"max_iters": 10, "eval_every": 5}}
    config = {"results_dir": str(tmp_path), "selections": "run", "experiments": {"zoba_quadratic": exp}}
    outs = []
    for cell in ("c0", "c1"):
        out = tmp_path / "tuning" / "zoba_quadratic" / "itd" / cell / "seed100.csv"
        execute_tuning_job(config, "zoba_quadratic", "itd", cell, 100, out)
        outs.append(out)
    with pytest.raises(ConfigError, match="1 is not a tuning seed"):
        execute_tuning_job(config, "zoba_quadratic", "itd", "c0", 1, tmp_path / "x.csv")
    sel_path = tmp_path / "tuning" / "zoba_quadratic" / "selection.json"
    sel = write_selection(config, "zoba_quadratic", outs, sel_path)
    assert sel["methods"]["itd"]["params"] == {"outer_lr": 0.3}  # the tiny step barely moves x
    assert sel["methods"]["itd"]["edge"] == ["outer_lr"]
    rows = execute_job(config, "zoba_quadratic", "itd", 1, tmp_path / "fig" / "seed1.csv")
    assert '"outer_lr":0.3' in rows["params"].iloc[0]
    record = json.loads((tmp_path / "fig" / "seed1.provenance.json").read_text())
    assert record["config"]["selection"]["params"] == {"outer_lr": 0.3}
    assert record["config"]["selection"]["file"] == str(sel_path)
