"""Shared set-up of the rule scripts: the job's thread count, logging to the rule's log file, and (in the
test command's smoke run) the env guard. The package is found through PYTHONPATH, set by the Snakefile."""

import atexit
import contextlib
import json
import logging
import os
import sys
from pathlib import Path


def setup(snakemake, uses_torch=True):
    """With ``BILEVEL_CHECK_RULE_ENVS=1``, confine imports to the rule's conda environment (see
    _env_guard); limit torch to the job's declared threads (jobs running side by side must not
    oversubscribe the cores: their timings are measurements), and send stdout/stderr to the rule's log.
    ``uses_torch=False``: a bookkeeping rule (aggregate and plot, claims, tables), which imports the
    package without torch; torch, if a figure needs it after all, still gets the job's threads.

    Returns a context manager; use ``with setup(snakemake): ...``. When its body succeeds, the job ends
    there (:func:`_finish`); an exception propagates as usual (Snakemake reports the failed job).
    """
    if os.environ.get("BILEVEL_CHECK_RULE_ENVS") == "1":  # the test command's smoke run: see _env_guard
        import _env_guard

        rules = json.loads(os.environ["BILEVEL_RULE_ENVS"])
        _env_guard.install(snakemake.rule, rules, getattr(snakemake.wildcards, "experiment", None))
    threads = max(1, int(snakemake.threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is first imported, in any job
    if uses_torch:  # the method jobs: set explicitly (the bookkeeping jobs may never import torch: ~3 s saved)
        import torch

        torch.set_num_threads(threads)
    stack = contextlib.ExitStack()
    stack.push(_finish)  # pushed first, so it runs last: after the log file is closed
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(open(snakemake.log[0], "w"))  # noqa: SIM115
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(contextlib.redirect_stderr(log))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    return stack


def _finish(exc_type, exc, tb) -> bool:
    """End a successful job at once: flush and close logging and the standard streams, run the atexit
    callbacks, then ``os._exit(0)``, skipping the interpreter's teardown. The outputs are already written
    (atomically) and closed; what is skipped is only freeing torch's state at exit, which costs ~0.9 s of CPU
    per process on the 2-core machine, x ~190 jobs in the default DAG. Not reached when the job raises."""
    if exc_type is not None:  # the job failed: let the exception propagate (Snakemake reports it)
        return False
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(0)

