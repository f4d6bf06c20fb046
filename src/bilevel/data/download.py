"""HTTP(S) download of one file into a temporary file, with a console progress bar.

The caller verifies the checksum and moves the file into place; on any failure (HTTP error,
interrupted transfer, time-out) the temporary file is removed before the error propagates, so
nothing half-written is ever left in the cache.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DataError

CHUNK = 1 << 20
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


def download_to_temp(url: str, directory: Path, name: str, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` into a new temporary file in ``directory``; return its path.

    Raises :class:`DataError` naming the URL for HTTP errors (e.g. 404), network errors and
    transfers that end before the announced ``Content-Length``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = ProgressBar(name, total) if progress else None
            received = 0
            while True:
                try:
                    chunk = response.read(CHUNK)
                except Exception as err:  # http.client.IncompleteRead, connection reset
                    raise DataError(f"interrupted transfer of {name} from {url}: received {received + _partial(err)}"
                                    f" of {total if total is not None else '?'} bytes ({type(err).__name__})") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                if bar:
                    bar.update(len(chunk))
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


def _partial(err: Exception) -> int:
    partial = getattr(err, "partial", b"")
    return len(partial) if isinstance(partial, bytes | bytearray) else 0
