"""Result rows, atomic writes, provenance, aggregation and claims."""

import json
from pathlib import Path

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


def test_aggregate_marks_a_point_diverged_when_any_seed_diverged(quad_small):
    rows = pd.concat([_rows(quad_small, s) for s in (0, 1)], ignore_index=True)
    hit = (rows.seed == 1) & (rows.step == 4)
    rows.loc[hit, "status"] = "diverged"
    agg = aggregate(rows)
    assert set(agg.loc[agg.step == 4, "status"]) == {"diverged"}
    assert set(agg.loc[agg.step < 4, "status"]) == {"completed"}
    assert list(agg.columns)[-1] == "status"


def test_every_curve_of_a_figure_has_its_own_style():
    from bilevel.plotting.style import figure_styles, method_color

    for labels in (["m1", "m5", "m10", "m50", "m100"], ["lmcn", "lmcn-m5", "mcn", "gda"], ["itd", "aid-cg", "x", "y"]):
        styles = figure_styles(labels)
        assert len({s[0] for s in styles.values()}) == len(labels), labels
    assert figure_styles(["itd", "m1"])["itd"][0] == method_color("itd")  # registry names keep their colour


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmarks(root, jobs):
    for rel, seconds, rss in jobs:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCH_HEADER + f"{seconds}\t0:00:0{int(seconds)}\t{rss}\t-\t-\t-\t-\t-\t-\t-\n")
    return root


def test_runtimes_table_reads_the_benchmark_files(tmp_path):
    from bilevel.experiments.runtimes import runtimes_markdown

    _benchmarks(tmp_path, (("run/exp/itd/seed1.tsv", 2.0, 300), ("run/exp/itd/seed2.tsv", 4.0, 350),
                           ("plot/exp.tsv", 1.5, 200)))
    text = runtimes_markdown(tmp_path)
    assert "| run | exp | 2 | 2.0 | 4.0 | 6.0 | 350 |" in text
    assert "| plot | exp | 1 | 1.5 | 1.5 | 1.5 | 200 |" in text


README_TABLE = """intro
<!-- runtimes:begin -->
| paper | figure / table | Snakemake target | measured runtime (default config) | hardware |
|---|---|---|---|---|
| A | attack | `figures/exp.png` | old text | 2 cores |
| A | other | `figures/absent.png` | kept | same |
| all | a table | `figures/tables/t.md` | < 5 s | same |
| all | notebooks | `figures/notebooks/{a,b}.ipynb` | old | same |
<!-- runtimes:end -->
outro
"""


def test_readme_runtime_column_is_filled_from_the_benchmark_files(tmp_path):
    from bilevel.cli import main

    bench = _benchmarks(tmp_path / "bench", (
        ("run/exp/itd/seed1.tsv", 9.2, 300), ("run/exp/aid/seed1.tsv", 15.6, 350), ("plot/exp.tsv", 7.9, 200),
        ("train_classifier/exp.tsv", 5.5, 200), ("notebooks/a.tsv", 13.1, 700), ("notebooks/b.tsv", 14.4, 710)))
    readme = tmp_path / "README.md"
    readme.write_text(README_TABLE)
    assert main(["runtimes", "--benchmarks", str(bench), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| `figures/exp.png` | classifier 6 s, 2 run jobs of 9-16 s, plot 8 s | 2 cores |" in text
    assert "| `figures/absent.png` | kept |" in text and "| < 5 s |" in text  # no benchmarks: hand-written text stays
    assert "| `figures/notebooks/{a,b}.ipynb` | 13-14 s each |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert main(["runtimes", "--benchmarks", str(bench), "--readme", str(readme)]) == 0
    assert readme.read_text() == text  # idempotent


def test_readme_runtimes_name_the_problem(tmp_path, capsys):
    from bilevel.cli import main

    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    bench = _benchmarks(tmp_path / "bench", (("plot/exp.tsv", 1.0, 1),))
    assert main(["runtimes", "--benchmarks", str(bench), "--readme", str(readme)]) == 2
    assert "runtimes:begin" in capsys.readouterr().err and readme.read_text() == "no markers here\n"
    assert main(["runtimes", "--benchmarks", str(tmp_path / "missing")]) == 2
    assert "run the workflow first" in capsys.readouterr().err


def test_the_repository_readme_has_a_generated_runtime_table():
    from bilevel.experiments.runtimes import BEGIN, END

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "`figures/quadratic_hypergradient.png`" in table and "| **all** |" in table


def test_provenance_names_the_slurm_job(monkeypatch):
    from bilevel.results import scheduler_description

    for name in ("SLURM_JOB_ID", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    assert scheduler_description() is None and provenance()["scheduler"] is None
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    assert provenance()["scheduler"] == {"slurm_job_id": "42", "slurm_gpus_on_node": "1"}


def test_without_times_keeps_everything_but_wall_clock_measurements():
    from bilevel.results import without_times

    rows = pd.DataFrame({"time": [0.1, 0.2], "metric": ["loss", "cumulative_time"], "value": [1.5, 0.2]})
    out = without_times(rows)
    assert list(out.columns) == ["metric", "value"]
    assert out["value"].iloc[0] == 1.5 and pd.isna(out["value"].iloc[1])
