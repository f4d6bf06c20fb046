"""HTTP(S) download of one file into a temporary file, with a console progress bar.

The caller verifies the checksum and moves the file into place; on any failure (HTTP error,
interrupted transfer, time-out, a transfer slower than the minimum rate or longer than the deadline,
Ctrl-C, SIGTERM) the temporary file is removed before the error propagates, so nothing half-written is
ever left in the cache. Only SIGKILL cannot be caught: :func:`remove_stale_parts` removes what such a
process left, once it is older than any live download can be.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..files import terminate_raises
from .errors import DataError

CHUNK = 1 << 20
#: defaults of a download's limits: the whole transfer within DEADLINE seconds, and at least MIN_RATE bytes per
#: second over every RATE_WINDOW seconds (a mirror trickling bytes never holds a job for good)
DEADLINE = 3600.0
MIN_RATE = 1024.0
RATE_WINDOW = 60.0
USER_AGENT = "bilevel-data/1 (+https://github.com/; research artifact)"


class ProgressBar:
    """``name [#####.....] 12.3/45.6 MB`` on a terminal (carriage return); 10% log lines otherwise."""

    def __init__(self, name: str, total: int | None, stream=None):
        self.name, self.total, self.stream = name, total, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done, self._last_decile, self._last_draw = 0, -1, 0.0

    def update(self, n: int) -> None:
        self.done += n
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw > 0.1:
                self._last_draw = now
                self._draw("\r")
        elif self.total:
            decile = int(10 * self.done / self.total)
            if decile > self._last_decile:
                self._last_decile = decile
                self._draw("")

    def close(self) -> None:
        self._draw("\r" if self.tty else "")
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, prefix: str) -> None:
        mb = self.done / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            text = f"{prefix}{self.name} [{bar}] {mb:.1f}/{self.total / 1e6:.1f} MB"
        else:
            text = f"{prefix}{self.name} {mb:.1f} MB"
        self.stream.write(text if self.tty else text + "\n")
        self.stream.flush()


class _Pace:
    """The transfer's clock: the overall deadline and the minimum rate over each window."""

    def __init__(self, deadline: float | None, min_rate: float | None, window: float):
        self.deadline, self.min_rate, self.window = deadline, min_rate, window
        self.start = self.window_start = time.monotonic()
        self.window_bytes = 0

    def check(self, received: int) -> str | None:
        """Why the transfer must stop now (None: go on)."""
        now = time.monotonic()
        if self.deadline is not None and now - self.start > self.deadline:
            return f"exceeded the deadline of {self.deadline:g} s"
        if self.min_rate is not None and now - self.window_start >= self.window:
            rate = (received - self.window_bytes) / (now - self.window_start)
            if rate < self.min_rate:
                return (f"slower than the minimum rate of {self.min_rate:g} bytes/s "
                        f"({rate:.3g} bytes/s over {now - self.window_start:.3g} s)")
            self.window_start, self.window_bytes = now, received
        return None

    def socket_timeout(self, timeout: float) -> float:
        """The per-read time-out: never beyond the deadline."""
        return timeout if self.deadline is None else max(0.1, min(timeout, self.deadline))


def download_to_temp(url: str, directory: Path, name: str, *, timeout: float = 60.0, progress: bool = True,
                     deadline: float | None = DEADLINE, min_rate: float | None = MIN_RATE,
                     rate_window: float = RATE_WINDOW) -> Path:
    """Fetch ``url`` into a new temporary file in ``directory``; return its path.

    Raises :class:`DataError` naming the URL for HTTP errors (e.g. 404), network errors, a read that
    waits more than ``timeout`` seconds, a transfer that takes longer than ``deadline`` seconds or that
    receives fewer than ``min_rate`` bytes per second over a ``rate_window`` (None: no such limit), and
    transfers that end before the announced ``Content-Length``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    pace = _Pace(deadline, min_rate, rate_window)
    try:
        with terminate_raises():
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(request, timeout=pace.socket_timeout(timeout)) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = ProgressBar(name, total) if progress else None
                received = 0
                while True:
                    try:
                        chunk = response.read1(CHUNK)  # what has arrived: a trickle cannot block the checks
                    except TimeoutError:
                        raise
                    except Exception as err:  # http.client.IncompleteRead, connection reset
                        raise DataError(f"interrupted transfer of {name} from {url}: received "
                                        f"{received + _partial(err)} of {total if total is not None else '?'} bytes "
                                        f"({type(err).__name__})") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    if bar:
                        bar.update(len(chunk))
                    stop = pace.check(received)
                    if stop is not None:
                        raise DataError(f"download of {name} from {url} {stop}: received {received} of "
                                        f"{total if total is not None else '?'} bytes; the partial file was removed")
                if bar:
                    bar.close()
                if total is not None and received != total:
                    raise DataError(f"interrupted transfer of {name} from {url}: received {received} of {total} bytes")
        return tmp
    except urllib.error.HTTPError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {name} from {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {name} from {url} failed: {err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_parts(directory: Path, name: str, older_than: float) -> list[Path]:
    """Remove the temporary files of ``name`` in ``directory`` older than ``older_than`` seconds (what a
    download killed by SIGKILL left; no live download is that old, it would have hit its deadline)."""
    removed = []
    now = time.time()
    for part in Path(directory).glob(f".{name}.*.part"):
        try:
            if now - part.stat().st_mtime > older_than:
                part.unlink()
                removed.append(part)
        except FileNotFoundError:
            pass
    return removed


def _partial(err: Exception) -> int:
    partial = getattr(err, "partial", b"")
    return len(partial) if isinstance(partial, bytes | bytearray) else 0
