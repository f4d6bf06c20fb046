"""Result rows, atomic writes, provenance, aggregation and claims."""

import json

import pandas as pd
import pytest

import bilevel
from bilevel.experiments.base import aggregate
from bilevel.results import ROW_COLUMNS, atomic_path, provenance, provenance_path, read_results, tidy, write_results


def _rows(quad_small, seed):
    m = bilevel.methods.make("itd", inner_steps=3, inner_lr=0.5)
    tr = bilevel.run(m, quad_small, max_iters=4, eval_every=2, seed=seed).trace
    return tidy(tr, experiment="e", phase="optimization", problem="quadratic", method="itd", method_name="itd",
                params=m.params(), seed=seed)


def test_tidy_schema_and_roundtrip(tmp_path, quad_small):
    rows = _rows(quad_small, 0)
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert set(rows["metric"]) >= {"hypergrad_norm2", "inner_distance", "hyperobjective", "hypergrad_rel_error"}
    out = tmp_path / "r" / "seed0.csv"
    write_results(rows, out, provenance({"a": 1}, seed=0))
    back = read_results([out])
    pd.testing.assert_frame_equal(back, rows, check_dtype=False)
    prov = json.loads(provenance_path(out).read_text())
    assert prov["seed"] == 0 and prov["config_hash"] and prov["versions"]["torch"].startswith("2.13.0")
    assert "commit" in prov["git"] and "cpu_count" in prov["device"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_aggregate_over_seeds(quad_small):
    rows = pd.concat([_rows(quad_small, s) for s in (0, 1)])
    agg = aggregate(rows)
    one = agg[(agg.metric == "hypergrad_norm2") & (agg.step == 4)].iloc[0]
    vals = rows[(rows.metric == "hypergrad_norm2") & (rows.step == 4)]["value"]
    assert one["n_seeds"] == 2 and one["mean"] == pytest.approx(vals.mean()) and one["max"] == vals.max()
    assert one["status"] == "completed"


def test_every_curve_of_a_figure_has_its_own_style():
    from bilevel.plotting.style import figure_styles, method_color

    for labels in (["m1", "m5", "m10", "m50", "m100"], ["lmcn", "lmcn-m5", "mcn", "gda"], ["itd", "aid-cg", "x", "y"]):
        styles = figure_styles(labels)
        assert len({s[0] for s in styles.values()}) == len(labels), labels
    assert figure_styles(["itd", "m1"])["itd"][0] == method_color("itd")  # registry names keep their colour


def test_runtimes_table_reads_the_benchmark_files(tmp_path):
    from bilevel.experiments.pipeline import runtimes_markdown

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rel, seconds, rss in (("run/exp/itd/seed1.tsv", 2.0, 300), ("run/exp/itd/seed2.tsv", 4.0, 350),
                              ("plot/exp.tsv", 1.5, 200)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:0{int(seconds)}\t{rss}\t-\t-\t-\t-\t-\t-\t-\n")
    text = runtimes_markdown(tmp_path)
    assert "| run | exp | 2 | 2.0 | 4.0 | 6.0 | 350 |" in text
    assert "| plot | exp | 1 | 1.5 | 1.5 | 1.5 | 200 |" in text
