"""Readers of the official formats, each on a small fixture written by the test in the real format."""

import gzip
import io
import json
import pickle
import shutil
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from bilevel.data import DataError, formats


def test_svmlight_with_missing_indices_and_svm_scale(tmp_path):
    path = tmp_path / "toy"
    path.write_text("+1 1:0.5 3:2.000000 \n-1 2:-1.5\n+1 1:1 2:0.5 3:4")  # trailing space, no final newline
    X, y = formats.read_svmlight(path, n_features=4)
    np.testing.assert_array_equal(X, [[0.5, 0, 2, 0], [0, -1.5, 0, 0], [1, 0.5, 4, 0]])
    np.testing.assert_array_equal(y, [1, -1, 1])
    scaled = formats.svm_scale(X)
    np.testing.assert_allclose(scaled[:, 0], [0, -1, 1])
    np.testing.assert_allclose(scaled[:, 3], 0)  # constant column: omitted by svm-scale, i.e. 0
    bad = tmp_path / "bad"
    bad.write_text("this is not libsvm\n")
    with pytest.raises(DataError, match="not a LIBSVM"):
        formats.read_svmlight(bad)


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_idx_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "imgs.gz", images)
    write_idx(tmp_path / "labels.gz", np.arange(7, dtype=np.uint8))
    np.testing.assert_array_equal(formats.read_idx(tmp_path / "imgs.gz"), images)
    np.testing.assert_array_equal(formats.read_idx(tmp_path / "labels.gz"), np.arange(7))
    (tmp_path / "short.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\0" * 3))
    with pytest.raises(DataError, match="announces"):
        formats.read_idx(tmp_path / "short.gz")
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"GIF89a..."))
    with pytest.raises(DataError, match="not an IDX"):
        formats.read_idx(tmp_path / "junk.gz")


def _png(pixels):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels.astype(bool)).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def test_omniglot_zip(tmp_path):
    rng = np.random.default_rng(1)
    drawings = {}
    with zipfile.ZipFile(tmp_path / "images_background_small1.zip", "w") as zf:
        for alphabet in ("Greek", "Latin"):
            for char in ("character01", "character02"):
                imgs = rng.integers(0, 2, size=(3, 105, 105))
                drawings[(alphabet, char)] = imgs
                for k, img in enumerate(imgs):
                    zf.writestr(f"images_background_small1/{alphabet}/{char}/{k:02d}.png", _png(img))
    out = formats.read_omniglot_zip(tmp_path / "images_background_small1.zip")
    assert sorted(out) == sorted(drawings)
    for key, imgs in drawings.items():
        np.testing.assert_array_equal(out[key], imgs)
        assert out[key].shape == (3, 105, 105)


def test_cifar100_and_fc100_split(tmp_path):
    coarse_names = [f"super{i}" for i in range(4)]
    fine_names = [f"class{i}" for i in range(8)]  # fine class c belongs to superclass c // 2
    rng = np.random.default_rng(2)

    def batch(n):
        fine = rng.integers(0, 8, size=n)
        return {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), "fine_labels": fine.tolist(),
                "coarse_labels": (fine // 2).tolist()}

    train, test = batch(40), batch(10)
    with tarfile.open(tmp_path / "cifar-100-python.tar.gz", "w:gz") as tar:
        for name, obj in (("meta", {"fine_label_names": fine_names, "coarse_label_names": coarse_names}),
                          ("train", train), ("test", test)):
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    cifar = formats.read_cifar100(tmp_path / "cifar-100-python.tar.gz")
    assert cifar["train"]["x"].shape == (40, 3, 32, 32)
    np.testing.assert_array_equal(cifar["train"]["x"][0].reshape(-1), train["data"][0])  # CHW order of the pickle
    (tmp_path / "train.json").write_text(json.dumps(["super1", "super3"]))
    part = formats.fc100_split(cifar, tmp_path / "train.json")
    all_fine = np.array(train["fine_labels"] + test["fine_labels"])
    expected = np.isin(all_fine // 2, [1, 3]).sum()
    assert len(part["y"]) == expected and set(part["classes"]) <= {2, 3, 6, 7}
    assert set((part["y"] // 2).tolist()) <= {1, 3}
    (tmp_path / "bad.json").write_text(json.dumps(["not_a_superclass"]))
    with pytest.raises(DataError, match="not_a_superclass"):
        formats.fc100_split(cifar, tmp_path / "bad.json")


@pytest.mark.parametrize("layout", ["learn2learn", "metaoptnet", "npz"])
def test_miniimagenet_layouts(tmp_path, layout):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(6, 84, 84, 3), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2])
    if layout == "learn2learn":
        obj = {"image_data": images, "class_dict": {"n01": [0, 1], "n02": [2, 3], "n03": [4, 5]}}
        path = tmp_path / "mini-imagenet-cache-train.pkl"
        path.write_bytes(pickle.dumps(obj))
    elif layout == "metaoptnet":
        obj = {"data": images, "labels": (labels + 10).tolist(), "catname2label": {"a": 10, "b": 11, "c": 12}}
        path = tmp_path / "miniImageNet_category_split_train_phase_train.pickle"
        path.write_bytes(pickle.dumps(obj))
    else:
        path = tmp_path / "mini.npz"
        np.savez(path, images=images, labels=labels)
    out = formats.read_miniimagenet(path)
    assert out["x"].shape == (6, 3, 84, 84) and out["x"].dtype == np.uint8
    np.testing.assert_array_equal(out["x"][3], images[3].transpose(2, 0, 1))
    np.testing.assert_array_equal(out["y"], labels)
    assert len(out["classes"]) == 3


def test_20newsgroups_matches_scikit_learn(tmp_path, monkeypatch):
    """Our reader of the official tarball equals sklearn's fetch_20newsgroups_vectorized on the same archive."""
    import sklearn.datasets._twenty_newsgroups as tn
    from sklearn.datasets import fetch_20newsgroups_vectorized

    texts = {"alt.atheism": ["God is not a proof", "Atheism and faith, again"],
             "comp.graphics": ["Rendering pixels with OpenGL", "JPEG compression of pixels", "a graphics card"],
             "sci.space": ["The shuttle reached orbit", "Orbit of the moon and the space station"]}
    archive = tmp_path / "20news-bydate.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for group, docs in texts.items():
                for k, doc in enumerate(docs):
                    payload = f"From: someone@example.org\nSubject: {group}\n\n{doc} {split} é".encode("latin1")
                    info = tarfile.TarInfo(f"20news-bydate-{split}/{group}/{5000 + k}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    data, names = formats.read_20newsgroups(archive)

    def fake_fetch(remote, dirname, **kwargs):
        target = f"{dirname}/{remote.filename}"
        shutil.copy(archive, target)
        return target

    monkeypatch.setattr(tn, "_fetch_remote", fake_fetch)
    assert names == sorted(texts)
    for split in ("train", "test"):
        ref = fetch_20newsgroups_vectorized(subset=split, data_home=str(tmp_path / "sk"))
        X, y = data[split]
        assert X.shape == ref.data.shape
        np.testing.assert_array_equal(y, ref.target)
        np.testing.assert_allclose(X.toarray(), ref.data.toarray())
