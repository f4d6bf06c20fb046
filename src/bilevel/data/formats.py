"""Readers of the official file formats into numpy arrays (torch conversion happens in the loaders).

- LIBSVM / svmlight text (``.bz2``/``.gz`` too): :func:`read_svmlight`, and ``svm-scale`` in :func:`svm_scale`;
- MNIST-style IDX (gzip or raw): :func:`read_idx`;
- 20 Newsgroups ``20news-bydate.tar.gz``: :func:`read_20newsgroups` (scikit-learn's vectorized features);
- Omniglot zips of 105x105 PNGs: :func:`read_omniglot_zip`;
- CIFAR-100 python pickles: :func:`read_cifar100`, and the FC100 split: :func:`fc100_split`;
- miniImageNet pickles / npz in their common layouts: :func:`read_miniimagenet`.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError

# -- LIBSVM ----------------------------------------------------------------------------------------


def read_svmlight(path, n_features: int | None = None, dense: bool = True):
    """``(X, y)`` of a LIBSVM text file (1-based indices; a missing index means 0) as float64."""
    from sklearn.datasets import load_svmlight_file

    try:
        X, y = load_svmlight_file(str(path), n_features=n_features, dtype=np.float64)
    except ValueError as err:
        raise DataError(f"{path}: not a LIBSVM/svmlight file ({err})") from None
    return (X.toarray() if dense else X), y


def svm_scale(X: np.ndarray, lower: float = -1.0, upper: float = 1.0) -> np.ndarray:
    """LIBSVM ``svm-scale -l lower -u upper``: each column mapped linearly from [min, max] (constant columns -> 0...).

    Matches ``svm-scale``: a constant column is left out of the output (value 0 here).
    """
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = lower + (upper - lower) * (X - lo) / span
    return np.where(hi > lo, out, 0.0)


# -- IDX -------------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """An IDX array (``magic = 0x0000 <type> <ndim>``, big-endian dims); ``.gz`` files are decompressed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header announces {tuple(dims)} but the file has {len(raw)} bytes, not {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


# -- 20 Newsgroups ---------------------------------------------------------------------------------


def read_20newsgroups(path):
    """Features exactly as ``sklearn.datasets.fetch_20newsgroups_vectorized()`` (defaults) builds them.

    ``load_files`` (latin-1, its own shuffle with seed 0) on the two ``20news-bydate-*`` folders, the
    subset shuffle with seed 12, ``CountVectorizer(dtype=int16)`` fitted on train, L2-normalised
    rows. Returns ``{"train": (X, y), "test": (X, y)}`` (CSR float64) and the class names.
    """
    from sklearn.datasets import load_files
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{path}: not a readable tar.gz archive ({err})") from None
        subsets = {}
        for split, folder in (("train", "20news-bydate-train"), ("test", "20news-bydate-test")):
            if not (Path(tmp) / folder).is_dir():
                raise DataError(f"{path}: folder {folder}/ missing from the archive")
            bunch = load_files(str(Path(tmp) / folder), encoding="latin1")
            order = np.arange(len(bunch.target))
            np.random.RandomState(12).shuffle(order)
            subsets[split] = ([bunch.data[i] for i in order], bunch.target[order], bunch.target_names)
    vectorizer = CountVectorizer(dtype=np.int16)
    X_train = vectorizer.fit_transform(subsets["train"][0]).tocsr().astype(np.float64)
    X_test = vectorizer.transform(subsets["test"][0]).tocsr().astype(np.float64)
    normalize(X_train, copy=False)
    normalize(X_test, copy=False)
    return {"train": (X_train, subsets["train"][1]), "test": (X_test, subsets["test"][1])}, subsets["train"][2]


# -- Omniglot --------------------------------------------------------------------------------------


def read_omniglot_zip(path) -> dict[tuple[str, str], np.ndarray]:
    """``{(alphabet, character): drawings}`` from an Omniglot zip; drawings are (n, 105, 105) uint8 with
    1 = background (white) and 0 = stroke, as in the PNGs, in file-name order."""
    from PIL import Image

    groups: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if not name.endswith(".png") or len(parts) < 4:
                    continue
                alphabet, character, file = parts[-3], parts[-2], parts[-1]
                with zf.open(name) as fh:
                    img = np.array(Image.open(io.BytesIO(fh.read())).convert("1"), dtype=np.uint8)
                if img.shape != (105, 105):
                    raise DataError(f"{path}:{name}: expected a 105x105 image, got {img.shape}")
                groups.setdefault((alphabet, character), []).append((file, img))
    except zipfile.BadZipFile as err:
        raise DataError(f"{path}: not a zip archive ({err})") from None
    if not groups:
        raise DataError(f"{path}: no <alphabet>/<character>/<drawing>.png images found")
    return {key: np.stack([img for _, img in sorted(items)]) for key, items in sorted(groups.items())}


# -- CIFAR-100 / FC100 -----------------------------------------------------------------------------


def _unpickle(fh):
    return pickle.load(fh, encoding="latin1")


def read_cifar100(path) -> dict:
    """``{"train"|"test": {"x": (N, 3, 32, 32) uint8, "fine": (N,), "coarse": (N,)}, "fine_names", "coarse_names"}``."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            def member(name):
                try:
                    return _unpickle(tar.extractfile(f"cifar-100-python/{name}"))
                except KeyError:
                    raise DataError(f"{path}: cifar-100-python/{name} missing from the archive") from None
            meta = member("meta")
            out = {"fine_names": list(meta["fine_label_names"]), "coarse_names": list(meta["coarse_label_names"])}
            for split in ("train", "test"):
                d = member(split)
                out[split] = {"x": np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                              "fine": np.asarray(d["fine_labels"], dtype=np.int64),
                              "coarse": np.asarray(d["coarse_labels"], dtype=np.int64)}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable tar.gz archive ({err})") from None
    return out


def fc100_split(cifar: dict, split_json) -> dict:
    """Images of the CIFAR-100 classes whose superclass is listed in ``split_json`` (train and test
    images pooled: 600 per class). Labels are CIFAR-100 fine-label ids; ``classes`` lists them."""
    names = json.loads(Path(split_json).read_text())
    unknown = [n for n in names if n not in cifar["coarse_names"]]
    if unknown:
        raise DataError(f"{split_json}: superclass(es) {', '.join(unknown)} are not CIFAR-100 coarse labels")
    coarse_ids = [cifar["coarse_names"].index(n) for n in names]
    x = np.concatenate([cifar["train"]["x"], cifar["test"]["x"]])
    fine = np.concatenate([cifar["train"]["fine"], cifar["test"]["fine"]])
    coarse = np.concatenate([cifar["train"]["coarse"], cifar["test"]["coarse"]])
    keep = np.isin(coarse, coarse_ids)
    order = np.argsort(fine[keep], kind="stable")
    return {"x": x[keep][order], "y": fine[keep][order], "classes": sorted(set(fine[keep].tolist())),
            "superclasses": names}


# -- miniImageNet ----------------------------------------------------------------------------------


def read_miniimagenet(path) -> dict:
    """``{"x": (N, 3, 84, 84) uint8, "y": (N,), "classes": [...]}`` from the common layouts:

    - learn2learn / Ravi cache pickle: ``{"image_data": (N, 84, 84, 3), "class_dict": {wnid: [indices]}}``;
    - MetaOptNet pickle: ``{"data": (N, 84, 84, 3), "labels": [...]}`` (optionally ``catname2label``);
    - npz with ``images``/``data``/``features`` and ``labels``/``targets``.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as fh:
                d = _unpickle(fh)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
        raise DataError(f"{path}: cannot read as a miniImageNet pickle/npz ({err})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict, got {type(d).__name__}")
    if "image_data" in d and "class_dict" in d:
        images = np.asarray(d["image_data"])
        classes = sorted(d["class_dict"])
        y = np.empty(len(images), dtype=np.int64)
        for label, wnid in enumerate(classes):
            y[np.asarray(d["class_dict"][wnid], dtype=np.int64)] = label
    else:
        image_key = next((k for k in ("images", "data", "features") if k in d), None)
        label_key = next((k for k in ("labels", "targets") if k in d), None)
        if image_key is None or label_key is None:
            raise DataError(f"{path}: unknown miniImageNet layout (keys {sorted(d)}); expected image_data/class_dict, "
                            f"data/labels or images/labels")
        images = np.asarray(d[image_key])
        raw = np.asarray(d[label_key])
        names = d.get("catname2label")
        classes = sorted(names, key=names.get) if isinstance(names, dict) else sorted(set(raw.tolist()))
        y = np.searchsorted(np.array(sorted(set(raw.tolist()))), raw).astype(np.int64)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1:3] != (84, 84):
        raise DataError(f"{path}: expected images of shape (N, 84, 84, 3), got {images.shape}")
    return {"x": np.ascontiguousarray(images.astype(np.uint8).transpose(0, 3, 1, 2)), "y": y,
            "classes": [str(c) for c in classes]}

