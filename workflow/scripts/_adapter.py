"""Shared set-up of the rule scripts: import path of the package and logging to the rule's log file."""

import contextlib
import logging
import sys
from pathlib import Path


def setup(snakemake):
    """Make ``bilevel`` importable from the source tree and send stdout/stderr to the rule's log.

    Returns a context manager; use ``with setup(snakemake): ...``.
    """
    src = Path(snakemake.scriptdir).resolve().parents[1] / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    stack = contextlib.ExitStack()
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        log = stack.enter_context(open(snakemake.log[0], "w"))  # noqa: SIM115
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(contextlib.redirect_stderr(log))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    return stack
