"""The data cache: lookup by name AND checksum, seed directories, and downloads against a local server.

Every download here goes to an HTTP server on 127.0.0.1 that the test starts; nothing touches the internet.
"""

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bilevel.data import ChecksumError, DataError, DataStore, FileSpec, MissingDataError, checksums

GOOD = b"official bytes " * 5000
BAD = b"tampered bytes " * 5000


def spec_for(name="file.bin", urls=(), **ids):
    ids = ids or {"sha256": hashlib.sha256(GOOD).hexdigest()}
    return FileSpec(name, "demo", tuple(urls), **ids)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path == "/good/file.bin" or self.path == "/demo/file.bin":
            self._send(GOOD)
        elif self.path == "/bad/file.bin":
            self._send(BAD)
        elif self.path == "/trickle/file.bin":  # a mirror that sends one byte every 0.2 s
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            try:
                for byte in GOOD[:300]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:  # the client gave up
                pass
            self.close_connection = True
        elif self.path == "/truncated/file.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def _send(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(path):
    return sorted(p.name for p in path.rglob("*") if p.is_file())


def test_download_good_file_is_verified_and_cached(tmp_path, server, capsys):
    store = DataStore(tmp_path / "cache", allow_download=True)
    spec = spec_for(urls=[f"{server}/good/file.bin"])
    loc = store.fetch(spec)
    assert loc.path == tmp_path / "cache" / "demo" / "file.bin"
    assert loc.path.read_bytes() == GOOD and loc.sha256 == hashlib.sha256(GOOD).hexdigest()
    assert loc.origin == f"download {server}/good/file.bin"
    assert "file.bin" in capsys.readouterr().err  # progress output on the console
    assert leftovers(tmp_path / "cache") == ["file.bin"]  # no temporary file left
    # second lookup: from the cache, no network (the server URL is gone)
    again = DataStore(tmp_path / "cache").fetch(spec_for())
    assert again.origin == "cache"


def test_download_wrong_checksum_leaves_nothing(tmp_path, server):
    store = DataStore(tmp_path / "cache", allow_download=True)
    with pytest.raises(ChecksumError) as err:
        store.fetch(spec_for(urls=[f"{server}/bad/file.bin"]))
    msg = str(err.value)
    assert hashlib.sha256(GOOD).hexdigest() in msg and hashlib.sha256(BAD).hexdigest() in msg  # both checksums
    assert f"{server}/bad/file.bin" in msg, "the URL as given (http://, not a path's http:/)"
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing(tmp_path, server):
    store = DataStore(tmp_path / "cache", allow_download=True)
    with pytest.raises(DataError, match="interrupted transfer of file.bin"):
        store.fetch(spec_for(urls=[f"{server}/truncated/file.bin"]))
    assert leftovers(tmp_path) == []


def test_404_is_a_clear_error(tmp_path, server):
    store = DataStore(tmp_path / "cache", allow_download=True)
    with pytest.raises(DataError, match=r"HTTP 404") as err:
        store.fetch(spec_for(urls=[f"{server}/missing/file.bin"]))
    assert f"{server}/missing/file.bin" in str(err.value)
    assert leftovers(tmp_path) == []


def test_falls_back_to_next_url_and_mirror_first(tmp_path, server):
    store = DataStore(tmp_path / "a", allow_download=True)
    loc = store.fetch(spec_for(urls=[f"{server}/missing/file.bin", f"{server}/good/file.bin"]))
    assert loc.origin.endswith("/good/file.bin")
    mirrored = DataStore(tmp_path / "b", mirrors=[server], allow_download=True).fetch(spec_for(urls=["http://127.0.0.1:9/x"]))
    assert mirrored.origin == f"download {server}/demo/file.bin"


def test_no_download_when_not_allowed(tmp_path, server):
    with pytest.raises(MissingDataError) as err:
        DataStore(tmp_path / "cache").fetch(spec_for(urls=[f"{server}/good/file.bin"]))
    msg = str(err.value)
    assert "missing file demo/file.bin" in msg and hashlib.sha256(GOOD).hexdigest() in msg and "downloads are off" in msg
    assert leftovers(tmp_path) == []


def test_seed_directory_copy_is_copied_into_cache(tmp_path):
    seed = tmp_path / "seed" / "demo"
    seed.mkdir(parents=True)
    (seed / "file.bin").write_bytes(GOOD)
    loc = DataStore(tmp_path / "cache", [tmp_path / "seed"]).fetch(spec_for())
    assert loc.origin == f"seed {tmp_path / 'seed'}"
    assert loc.path == tmp_path / "cache" / "demo" / "file.bin" and loc.path.read_bytes() == GOOD
    # flat seed layout (<seed>/<name>) works too
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "file.bin").write_bytes(GOOD)
    assert DataStore(tmp_path / "cache2", [flat]).fetch(spec_for()).path.read_bytes() == GOOD


def test_wrong_checksum_in_seed_is_reported_and_never_used(tmp_path):
    seed = tmp_path / "seed" / "demo"
    seed.mkdir(parents=True)
    (seed / "file.bin").write_bytes(BAD)
    store = DataStore(tmp_path / "cache", [tmp_path / "seed"])
    with pytest.raises(MissingDataError) as err:
        store.fetch(spec_for())
    msg = str(err.value)
    assert "checksum mismatch" in msg and hashlib.sha256(BAD).hexdigest() in msg
    assert not (tmp_path / "cache").exists()
    # a correct copy in a later seed directory is used instead
    good = tmp_path / "seed2" / "demo"
    good.mkdir(parents=True)
    (good / "file.bin").write_bytes(GOOD)
    assert DataStore(tmp_path / "cache", [tmp_path / "seed", tmp_path / "seed2"]).fetch(spec_for()).path.read_bytes() == GOOD


def test_identities_md5_git_blob_and_gz_payload(tmp_path):
    import gzip

    path = tmp_path / "demo" / "f.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(GOOD, mtime=0))
    sums = checksums(path, ("sha256", "md5", "git_blob", "payload_sha256"))
    assert sums["payload_sha256"] == hashlib.sha256(GOOD).hexdigest()
    blob = hashlib.sha1(b"blob %d\0" % path.stat().st_size + path.read_bytes()).hexdigest()
    assert sums["git_blob"] == blob
    for ids in ({"md5": sums["md5"]}, {"git_blob": blob}, {"payload_sha256": sums["payload_sha256"]}):
        assert DataStore(tmp_path).fetch(FileSpec("f.gz", "demo", **ids)).sha256 == sums["sha256"]


def test_first_use_is_recorded_then_enforced(tmp_path):
    spec = FileSpec("nochecksum.pkl", "demo")
    target = tmp_path / "demo" / "nochecksum.pkl"
    target.parent.mkdir()
    target.write_bytes(GOOD)
    DataStore(tmp_path).fetch(spec)
    record = json.loads((tmp_path / "checksums.json").read_text())
    assert record["demo/nochecksum.pkl"]["sha256"] == hashlib.sha256(GOOD).hexdigest()
    target.write_bytes(BAD)  # a later, different copy is refused
    with pytest.raises(MissingDataError, match="checksum mismatch"):
        DataStore(tmp_path).fetch(spec)


def test_env_variables_choose_cache_and_seed_dirs(tmp_path, monkeypatch):
    seed = tmp_path / "seed"
    (seed / "demo").mkdir(parents=True)
    (seed / "demo" / "file.bin").write_bytes(GOOD)
    monkeypatch.setenv("BILEVEL_DATA_DIR", str(tmp_path / "envcache"))
    monkeypatch.setenv("BILEVEL_DATA_SEED_DIRS", f"{tmp_path / 'nonexistent'}:{seed}")
    store = DataStore()
    assert store.data_dir == tmp_path / "envcache" and seed in store.seed_dirs
    assert store.fetch(spec_for()).path == tmp_path / "envcache" / "demo" / "file.bin"
    assert DataStore(tmp_path / "explicit").data_dir == tmp_path / "explicit"  # the config wins over the env


def test_a_trickling_mirror_ends_at_the_deadline_and_leaves_nothing(tmp_path, server):
    store = DataStore(tmp_path / "cache", allow_download=True, deadline=1.5, min_rate=None)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"exceeded the deadline of 1\.5 s") as err:
        store.fetch(spec_for(urls=[f"{server}/trickle/file.bin"]))
    assert time.monotonic() - started < 1.5 + 2.0, "ended within the deadline (plus one read)"
    assert f"{server}/trickle/file.bin" in str(err.value)
    assert leftovers(tmp_path) == []


def test_a_transfer_below_the_minimum_rate_is_ended(tmp_path, server):
    from bilevel.data.download import download_to_temp

    with pytest.raises(DataError, match="slower than the minimum rate of 100 bytes/s"):
        download_to_temp(f"{server}/trickle/file.bin", tmp_path, "file.bin", progress=False, deadline=None,
                         min_rate=100.0, rate_window=1.0)
    assert leftovers(tmp_path) == []


SIGTERM_SCRIPT = """
import sys
sys.path.insert(0, {src!r})
from bilevel.data import DataStore, FileSpec
spec = FileSpec("file.bin", "demo", ({url!r},), sha256={sha!r})
DataStore({cache!r}, allow_download=True, progress=False).fetch(spec)
"""


def test_a_sigterm_during_a_download_leaves_nothing(tmp_path, server):
    cache = tmp_path / "cache"
    script = SIGTERM_SCRIPT.format(src=str(Path(__file__).resolve().parents[1] / "src"), url=f"{server}/trickle/file.bin",
                                   sha=hashlib.sha256(GOOD).hexdigest(), cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not list(cache.rglob("*.part")):
        time.sleep(0.05)
    assert list(cache.rglob("*.part")), "the download never started"
    time.sleep(0.3)  # some bytes in the temporary file
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert leftovers(tmp_path) == []


def test_what_a_killed_download_left_is_removed_once_stale(tmp_path, server):
    folder = tmp_path / "cache" / "demo"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".file.bin.abc.part", folder / ".file.bin.def.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    DataStore(tmp_path / "cache", allow_download=True, deadline=3600).fetch(spec_for(urls=[f"{server}/good/file.bin"]))
    assert not stale.exists() and fresh.exists(), "only what is older than any live download can be"
