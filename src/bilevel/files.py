"""File helpers at the bottom of the package: canonical JSON, its hash, atomic writes.

They depend on the standard library only, so that every layer may use them (the classifier cache, the
result files). :mod:`bilevel.results` re-exports them under the same names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
import threading
from pathlib import Path


class Terminated(SystemExit):
    """SIGTERM arrived inside :func:`terminate_raises`: unwinds like any exception (so temporary files are
    removed) and ends the process with exit status 143 (128 + SIGTERM, the shell's convention)."""


@contextlib.contextmanager
def terminate_raises():
    """Within the block, SIGTERM raises :class:`Terminated` instead of killing the process at once, so the
    ``finally`` / ``except`` clauses that remove temporary files run before the process ends. Active only in
    the main thread and when SIGTERM has its default action (an application's own handler is left alone)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace: the form hashed and stored in ``params``."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj) -> str:
    """sha256 of the canonical JSON of ``obj`` (the configuration a result was produced from)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with terminate_raises():
            yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary, shareable files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
