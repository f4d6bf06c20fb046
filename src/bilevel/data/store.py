"""The data cache: look files up by official name AND checksum, copy them in, download as a last resort.

Lookup order for a :class:`FileSpec` (``specs/datasets.md`` §1, rule 1):

1. the cache ``<data_dir>/<folder>/<name>``;
2. each read-only seed directory, as ``<seed>/<folder>/<name>`` then ``<seed>/<name>``
   (an accepted copy is copied into the cache);
3. only if downloads are allowed: each mirror (``<mirror>/<folder>/<name>``), then the official URLs.
   A download goes to a temporary file, is verified, then moved into place.

A copy whose checksum is not an official one is reported (both checksums) and never used. The cache
directory is, in order: the ``data_dir`` argument (the config's ``data.dir``), the environment
variable ``BILEVEL_DATA_DIR``, ``data/`` in the working directory. Extra seed directories come from
the argument and from ``BILEVEL_DATA_SEED_DIRS`` (``os.pathsep``-separated); Debian's datasets
directory ``/usr/share/datasets`` is always searched. Missing seed directories are skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .download import DEADLINE, MIN_RATE, download_to_temp, remove_stale_parts
from .errors import ChecksumError, DataError, MissingDataError
from .registry import FileSpec

log = logging.getLogger("bilevel.data")

ENV_DATA_DIR = "BILEVEL_DATA_DIR"
ENV_SEED_DIRS = "BILEVEL_DATA_SEED_DIRS"
DEFAULT_DATA_DIR = "data"
SYSTEM_SEED_DIRS = ("/usr/share/datasets",)  # Debian's dataset-* packages install here
RECORD_FILE = "checksums.json"


def checksums(path: str | os.PathLike, kinds=("sha256", "md5", "git_blob")) -> dict[str, str]:
    """Checksums of a file by kind: ``sha256``, ``md5``, ``git_blob`` (``git hash-object``) and
    ``payload_sha256`` (sha256 of the gunzipped content), each computed in one streaming pass."""
    path = Path(path)
    hashers = {}
    if "sha256" in kinds:
        hashers["sha256"] = hashlib.sha256()
    if "md5" in kinds:
        hashers["md5"] = hashlib.md5(usedforsecurity=False)
    if "git_blob" in kinds:
        hashers["git_blob"] = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            for h in hashers.values():
                h.update(chunk)
    out = {k: h.hexdigest() for k, h in hashers.items()}
    if "payload_sha256" in kinds:
        h = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out["payload_sha256"] = h.hexdigest()
        except (OSError, EOFError):
            out["payload_sha256"] = "not a gzip file"
    return out


@dataclass(frozen=True)
class Located:
    """An accepted copy of an official file."""

    spec: FileSpec
    path: Path
    sha256: str
    origin: str  # "cache", "seed <dir>", "download <url>"

    def record(self) -> dict:
        """What provenance sidecars store about the file."""
        return {"file": self.spec.name, "folder": self.spec.folder, "sha256": self.sha256, "origin": self.origin}


def _env_dirs(value: str | None) -> list[Path]:
    return [Path(p) for p in (value or "").split(os.pathsep) if p]


class DataStore:
    """A cache directory plus read-only seed directories (and, optionally, the network)."""

    def __init__(self, data_dir=None, seed_dirs=(), *, mirrors=(), allow_download=False, progress=True,
                 deadline: float | None = DEADLINE, min_rate: float | None = MIN_RATE):
        """``deadline`` (seconds for one file's whole transfer) and ``min_rate`` (bytes per second over each
        minute) end a download that would otherwise hang on a trickling mirror (None: no such limit)."""
        self.data_dir = Path(data_dir or os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR)
        dirs = [Path(d) for d in seed_dirs] + _env_dirs(os.environ.get(ENV_SEED_DIRS)) + [
            Path(d) for d in SYSTEM_SEED_DIRS]
        self.seed_dirs = [d.resolve() for d in dict.fromkeys(dirs) if d.is_dir()]
        self.skipped_seed_dirs = [d for d in dict.fromkeys(dirs) if not d.is_dir() and str(d) not in SYSTEM_SEED_DIRS]
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.allow_download = bool(allow_download)
        self.progress = progress
        self.deadline, self.min_rate = deadline, min_rate
        self.rejected: list[str] = []

    def __repr__(self) -> str:
        return (f"DataStore(data_dir={str(self.data_dir)!r}, seed_dirs={[str(d) for d in self.seed_dirs]}, "
                f"allow_download={self.allow_download})")

    # -- identities -------------------------------------------------------------------------
    def _recorded(self) -> dict:
        path = self.data_dir / RECORD_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err}); fix or delete it") from None

    def _record_first_use(self, spec: FileSpec, sha256: str, origin: str) -> None:
        records = self._recorded()
        records[spec.key] = {"sha256": sha256, "origin": origin,
                             "recorded": datetime.now(UTC).isoformat(timespec="seconds")}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.data_dir / RECORD_FILE, json.dumps(records, indent=2, sort_keys=True) + "\n")
        log.warning("%s has no published checksum: accepted on first use from %s and recorded (sha256 %s) in %s",
                    spec.key, origin, sha256, self.data_dir / RECORD_FILE)

    def verify(self, spec: FileSpec, path: Path) -> tuple[bool, dict[str, str], dict[str, str]]:
        """``(accepted, expected, actual)`` for the copy at ``path``."""
        expected = dict(spec.known_identities)
        if not expected:
            recorded = self._recorded().get(spec.key)
            if recorded is None:
                actual = checksums(path, ("sha256",))
                return True, {}, actual
            expected = {"sha256": recorded["sha256"]}
        actual = checksums(path, tuple(expected) + (("sha256",) if "sha256" not in expected else ()))
        accepted = any(actual.get(kind) == value for kind, value in expected.items())
        return accepted, expected, actual

    def _mismatch(self, spec: FileSpec, path: Path | str, expected: dict, actual: dict) -> str:
        """``path``: the copy's file, or the URL it was downloaded from (a string: ``Path`` would fold ``//``)."""
        exp = ", ".join(f"{k} {v}" for k, v in expected.items())
        act = ", ".join(f"{k} {actual[k]}" for k in expected if k in actual)
        return (f"{path}: checksum mismatch for {spec.key} — expected {exp}; this file has {act}. "
                f"It is not used; delete or replace it with the official file.")

    # -- lookup ---------------------------------------------------------------------------------
    def cache_path(self, spec: FileSpec) -> Path:
        return self.data_dir / spec.folder / spec.name

    def candidates(self, spec: FileSpec) -> list[tuple[Path, str]]:
        out = [(self.cache_path(spec), "cache")]
        for seed in self.seed_dirs:
            out += [(seed / spec.folder / spec.name, f"seed {seed}"), (seed / spec.name, f"seed {seed}")]
        return out

    def find(self, spec: FileSpec, copy: bool = True) -> Located | None:
        """The first accepted local copy (copied into the cache when it came from a seed directory
        and ``copy``; a first-use checksum is recorded only when copying)."""
        for path, origin in self.candidates(spec):
            if not path.is_file():
                continue
            accepted, expected, actual = self.verify(spec, path)
            if not accepted:
                message = self._mismatch(spec, path, expected, actual)
                log.warning(message)
                self.rejected.append(message)
                continue
            if not expected and copy:
                self._record_first_use(spec, actual["sha256"], f"{origin}: {path}")
            if origin != "cache" and copy:
                path = self._copy_into_cache(spec, path)
            return Located(spec, path, actual["sha256"], origin)
        return None

    def _copy_into_cache(self, spec: FileSpec, source: Path) -> Path:
        target = self.cache_path(spec)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
            return target
        except OSError as err:  # read-only cache: use the seed copy in place
            log.warning("could not copy %s into the cache %s (%s); using it in place", source, target.parent, err)
            return source

    def fetch(self, spec: FileSpec) -> Located:
        """A verified copy of ``spec``: local if possible, else downloaded when allowed."""
        found = self.find(spec)
        if found is not None:
            return found
        if not self.allow_download:
            raise MissingDataError(self.missing_message([spec]))
        return self._download(spec)

    def _download(self, spec: FileSpec) -> Located:
        urls = [f"{m}/{spec.folder}/{spec.name}" for m in self.mirrors] + list(spec.urls)
        if not urls:
            raise MissingDataError(self.missing_message([spec]) + " (no download URL is known for this file)")
        target = self.cache_path(spec)
        for stale in remove_stale_parts(target.parent, spec.name, self.deadline or 86400.0):
            log.warning("removed %s, left by a download that was killed", stale)
        failures = []
        for url in urls:
            log.info("downloading %s from %s", spec.key, url)
            try:
                tmp = download_to_temp(url, target.parent, spec.name, progress=self.progress, deadline=self.deadline,
                                       min_rate=self.min_rate)
            except DataError as err:
                failures.append(str(err))
                log.warning(str(err))
                continue
            try:
                accepted, expected, actual = self.verify(spec, tmp)
                if not accepted:
                    raise ChecksumError(self._mismatch(spec, url, expected, actual).replace(
                        "It is not used; delete or replace it with the official file.",
                        "The download was discarded."))
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            if not expected:
                self._record_first_use(spec, actual["sha256"], f"download {url}")
            return Located(spec, target, actual["sha256"], f"download {url}")
        raise DataError(f"could not download {spec.key}:\n  " + "\n  ".join(failures))

    def resolve(self, specs) -> list[Located]:
        """Verified copies of every file in ``specs``; one error naming ALL missing files otherwise."""
        located, missing = [], []
        for spec in specs:
            found = self.find(spec)
            if found is None:
                missing.append(spec)
            else:
                located.append(found)
        if missing and self.allow_download:
            located += [self._download(spec) for spec in missing]
            missing = []
        if missing:
            raise MissingDataError(self.missing_message(missing, found=[loc.spec for loc in located]))
        order = {spec.key: i for i, spec in enumerate(specs)}
        return sorted(located, key=lambda loc: order[loc.spec.key])

    def missing_message(self, missing, found=()) -> str:
        """Which files are missing, their checksums, where to get them, and where they were looked for."""
        lines = []
        for spec in missing:
            ids = ", ".join(f"{k} {v}" for k, v in spec.known_identities.items()) or "no published checksum"
            where = " or ".join(spec.urls) if spec.urls else (spec.how_to_get or "no known URL")
            lines.append(f"missing file {spec.key} ({ids}); get it from {where}")
        if found:
            lines.append("present: " + ", ".join(s.key for s in found))
        searched = [str(self.data_dir)] + [str(d) for d in self.seed_dirs]
        absent = f" (seed directories not found: {', '.join(map(str, self.skipped_seed_dirs))})" if self.skipped_seed_dirs else ""
        lines.append(f"searched: {', '.join(searched)}{absent}; downloads are "
                     f"{'on' if self.allow_download else 'off (config data.allow_download: true, or `snakemake download`)'}")
        lines += self.rejected
        return "\n  ".join(lines)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
