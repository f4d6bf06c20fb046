"""Shared set-up of the rule scripts: the job's thread count, logging to the rule's log file, and (in the
test command's smoke run) the env guard. The package is found through PYTHONPATH, set by the Snakefile."""

import contextlib
import json
import logging
import os
import sys
from pathlib import Path


def setup(snakemake):
    """With ``BILEVEL_CHECK_RULE_ENVS=1``, confine imports to the rule's conda environment (see
    _env_guard); limit torch to the job's declared threads (jobs running side by side must not
    oversubscribe the cores: their timings are measurements), and send stdout/stderr to the rule's log.

    Returns a context manager; use ``with setup(snakemake): ...``.
    """
    if os.environ.get("BILEVEL_CHECK_RULE_ENVS") == "1":  # the test command's smoke run: see _env_guard
        import _env_guard

        rules = json.loads(os.environ["BILEVEL_RULE_ENVS"])
        _env_guard.install(snakemake.rule, rules, getattr(snakemake.wildcards, "experiment", None))
    import torch  # every rule script uses the package, which imports torch

    torch.set_num_threads(max(1, int(snakemake.threads)))
    stack = contextlib.ExitStack()
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(open(snakemake.log[0], "w"))  # noqa: SIM115
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(contextlib.redirect_stderr(log))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    return stack

