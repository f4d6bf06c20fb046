"""Jobs of several seeds (config key ``seeds_per_job``): the seed lists of an experiment, their file names, and
the guarantee that makes batching safe -- a seed's numbers are the same whether it runs alone or after
other seeds in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bilevel.experiments import ConfigError
from bilevel.experiments.config import load_config
from bilevel.experiments.pipeline import batch_name, checkpoint_dir, execute_job, parse_batch, seed_batches
from bilevel.results import TIME_COLUMNS, TIME_METRICS

ROOT = Path(__file__).resolve().parents[1]
SMOKE = load_config(ROOT / ".test" / "config" / "config.yaml")


def test_seed_batches_split_in_configuration_order():
    assert seed_batches([3, 1, 2]) == [[3, 1, 2]]
    assert seed_batches([3, 1, 2], "all") == [[3, 1, 2]]
    assert seed_batches([3, 1, 2], 1) == [[3], [1], [2]]
    assert seed_batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert seed_batches([], "all") == []
    for bad in (0, -1, 1.5, True, "two"):
        with pytest.raises(ConfigError, match="seeds_per_job"):
            seed_batches([1, 2], bad)


def test_batch_names_round_trip_and_a_single_seed_keeps_the_one_seed_layout():
    assert batch_name([1]) == "1" and batch_name([1, 12, 3]) == "1_12_3"
    assert parse_batch("1_12_3") == [1, 12, 3] and parse_batch("7") == [7]
    for bad, why in (("1_x", "expected seeds"), ("2_2", "twice")):
        with pytest.raises(ValueError, match=why):
            parse_batch(bad)
    out = Path("r/exp/itd/seed1_2.csv")
    assert checkpoint_dir(out) == Path("r/exp/itd/seed1_2.checkpoints")
    assert checkpoint_dir(out, 2) == Path("r/exp/itd/seed1_2.checkpoints/seed2")


def _numbers(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows without the wall-clock measurements (which differ between any two runs)."""
    rows = rows[~rows["metric"].isin(TIME_METRICS)].drop(columns=list(TIME_COLUMNS))
    return rows.reset_index(drop=True)


@pytest.mark.parametrize(("experiment", "label"), [
    ("zoba_quadratic", "zoba"),  # random directions and minibatches from the method's generators
    ("logistic_hypergradient", "aid-cg"),  # the seed draws the data split of a cached dataset
    ("sogd_regret", "zo-sogd"),  # an online stream with its own per-round randomness
])
def test_a_seed_gives_the_same_numbers_alone_and_after_another_seed(tmp_path, experiment, label):
    config = {**SMOKE, "selections": "committed"}
    exp = config["experiments"][experiment]
    config = {**config, "experiments": {experiment: {**exp, "seeds": [1, 2]}}}
    if "tuning" in exp:  # the committed selections belong to the default config: use the smoke run's own
        config["experiments"][experiment] = {k: v for k, v in config["experiments"][experiment].items()
                                             if k != "tuning"}
        config["experiments"][experiment]["methods"] = {
            k: {kk: vv for kk, vv in v.items() if kk != "tune"} for k, v in exp["methods"].items()}
    both = execute_job(config, experiment, label, [1, 2], tmp_path / "seed1_2.csv")
    alone = execute_job(config, experiment, label, 2, tmp_path / "seed2.csv")
    assert sorted(both["seed"].unique()) == [1, 2]
    pd.testing.assert_frame_equal(_numbers(both[both["seed"] == 2]), _numbers(alone))
    record = json.loads((tmp_path / "seed1_2.provenance.json").read_text())
    assert record["seed"] == [1, 2] and record["config"]["seeds"] == [1, 2]
    assert set(record["wall_seconds_per_seed"]) == {"1", "2"}
    assert json.loads((tmp_path / "seed2.provenance.json").read_text())["seed"] == 2


def test_a_job_refuses_a_repeated_seed(tmp_path):
    with pytest.raises(ValueError, match="distinct seeds"):
        execute_job(SMOKE, "zoba_quadratic", "zoba", [1, 1], tmp_path / "x.csv")
