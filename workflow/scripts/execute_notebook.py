"""Rule notebook: execute a notebook with papermill, injecting the run's paths as parameters."""

import os

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    import papermill

    from bilevel.results import atomic_path

    cfg = snakemake.config  # noqa: F821
    params = {
        "results_dir": os.path.abspath(cfg["results_dir"]),
        "figures_dir": os.path.abspath(cfg["figures_dir"]),
        "experiments": list(cfg["experiments"]),
    }
    with atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
        papermill.execute_notebook(snakemake.input.notebook, str(tmp), parameters=params,  # noqa: F821
                                   kernel_name="python3", progress_bar=False, cwd=os.path.abspath(cfg["figures_dir"]))
