"""The bookkeeping side of the package loads without torch (each figure, summary and notebook job of the
default DAG saves the ~3 s of importing it), and the public API is unchanged by the lazy loading."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bilevel.experiments.config import load_config
from bilevel.experiments.pipeline import aggregate_files, execute_job

ROOT = Path(__file__).resolve().parents[1]
SMOKE = load_config(ROOT / ".test" / "config" / "config.yaml")

#: run first in the child interpreter: any import of torch fails loudly
BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch imported by a bookkeeping path: {name}")
sys.meta_path.insert(0, _Block())
"""


def _child(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_the_package_and_the_bookkeeping_modules_import_without_torch():
    done = _child("""
        import bilevel, bilevel.data, bilevel.results, bilevel.accounting
        import bilevel.experiments, bilevel.experiments.pipeline, bilevel.experiments.tuning
        import bilevel.plotting.curves, bilevel.plotting.heatmaps
        from bilevel.experiments import available, get
        assert all(get(name).claims is not None for name in available())
        print("ok", bilevel.data.available()[:1])
    """)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_experiments_figure_and_summary_are_drawn_without_torch(tmp_path):
    config = {**SMOKE, "experiments": {"zoba_dimensions": SMOKE["experiments"]["zoba_dimensions"]}}
    csv = tmp_path / "zoba" / "seed1.csv"
    execute_job(config, "zoba_dimensions", "zoba", 1, csv)
    agg = tmp_path / "aggregate.csv"
    aggregate_files([csv], agg)
    done = _child(f"""
        from bilevel.experiments.config import load_config
        from bilevel.experiments.pipeline import plot_files, write_summary
        config = load_config({str(ROOT / ".test" / "config" / "config.yaml")!r})
        plot_files(config, "zoba_dimensions", {str(agg)!r}, [{str(tmp_path / "f.pdf")!r}, {str(tmp_path / "f.png")!r}])
        write_summary("zoba_dimensions", [{str(csv)!r}], {str(tmp_path / "s.md")!r}, {str(tmp_path / "s.tex")!r},
                      config["experiments"]["zoba_dimensions"])
    """)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "f.png").stat().st_size > 0 and "zoba" in (tmp_path / "s.md").read_text()


def test_the_public_names_resolve_and_run_stays_the_function():
    import bilevel.run  # the submodule of the same name: bilevel.run is still the function

    assert callable(bilevel.run) and bilevel.run.__module__ == "bilevel.run"
    assert bilevel.Oracle.__name__ == "Oracle" and bilevel.RunResult.__name__ == "RunResult"
    assert bilevel.problems.make and bilevel.methods.make and bilevel.data.load
    assert {"run", "Oracle", "methods", "problems", "data"} <= set(dir(bilevel))
    try:
        bilevel.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")
    problem = bilevel.problems.make("quadratic", dim_inner=3, dim_outer=2, n_samples_inner=8, n_samples_outer=8, seed=0)
    result = bilevel.run(bilevel.methods.make("itd", inner_steps=3), problem, max_iters=2, seed=0)
    assert isinstance(result, bilevel.RunResult)
