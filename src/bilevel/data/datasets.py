"""``load(name)``: a registered dataset as torch tensors, from verified files or a labelled offline route.

Order (``specs/datasets.md`` §1): cache -> seed directories -> an offline route that reproduces the
official values (checked by array checksum) -> download (only when allowed). Otherwise the error
names every missing file, its checksum and its official source. Stand-ins are datasets of their own
(``mnist5k``, ``creditcard``, ``omniglot-small``) whose :attr:`Dataset.label` reads
``STAND-IN: <stand-in> for <official>``; nothing is ever substituted silently.

Array conventions: images are uint8 ``(N, C, H, W)`` as stored (MNIST 0..255; Omniglot 1 = white
background, 0 = stroke, grouped ``(characters, drawings, 105, 105)``); tabular features float64;
20 Newsgroups a sparse CSR float64 tensor; labels as in the official files (breast-cancer 2/4,
australian -1/+1, digit / class ids).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from . import formats, offline
from .download import DEADLINE, MIN_RATE
from .errors import DataError, MissingDataError
from .registry import DATASETS, DatasetSpec, get
from .store import DataStore, Located

log = logging.getLogger("bilevel.data")
_TRACKERS: list[list[dict]] = []
_MEMO: dict[tuple, tuple] = {}  # decoded arrays, by dataset, splits and file checksums


@dataclass
class Dataset:
    """A loaded dataset: ``splits[split][key]`` tensors (``x``, ``y``, ...), provenance, label."""

    spec: DatasetSpec
    splits: dict[str, dict[str, torch.Tensor]]
    files: list[Located]
    source: str
    meta: dict = field(default_factory=dict)
    array_sha256: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def stand_in_for(self) -> str | None:
        return self.spec.stand_in_for

    @property
    def label(self) -> str:
        """``name``, or ``STAND-IN: <name> for <official>`` (use it in titles, legends and captions)."""
        return self.spec.label

    def __getitem__(self, split: str) -> dict[str, torch.Tensor]:
        if split not in self.splits:
            raise KeyError(f"{self.name}: no split {split!r} loaded; loaded: {', '.join(self.splits)}")
        return self.splits[split]

    def shapes(self) -> dict[str, dict[str, list[int]]]:
        return {s: {k: list(v.shape) for k, v in arrays.items()} for s, arrays in self.splits.items()}

    def record(self) -> dict:
        """Provenance of this dataset: files (name + sha256 + origin), source, label, shapes, licence."""
        return {"dataset": self.name, "label": self.label, "stand_in_for": self.stand_in_for, "source": self.source,
                "files": [loc.record() for loc in self.files], "array_sha256": self.array_sha256,
                "shapes": self.shapes(), "licence": self.spec.licence}


@contextlib.contextmanager
def track_usage():
    """Collect the :meth:`Dataset.record` of every dataset loaded inside the block (for provenance)."""
    records: list[dict] = []
    _TRACKERS.append(records)
    try:
        yield records
    finally:  # by identity: an enclosing block may hold an equal list (the same datasets)
        del _TRACKERS[next(i for i, r in enumerate(_TRACKERS) if r is records)]


def _identity(record: dict) -> tuple:
    return record["dataset"], tuple(f["sha256"] for f in record["files"]), record["array_sha256"]


def _note_usage(ds: Dataset) -> Dataset:
    """Record ``ds`` in every open :func:`track_usage` block, once per identical data (the first
    lookup's record is kept: a later load of the same files from the cache adds nothing)."""
    if _TRACKERS:
        record = ds.record()
        for records in _TRACKERS:
            if _identity(record) not in {_identity(r) for r in records}:
                records.append(record)
    return ds


_DEFAULTS: dict = {"data_dir": None, "seed_dirs": (), "mirrors": (), "allow_download": False, "stand_ins": {},
                   "download_deadline": DEADLINE, "download_min_rate": MIN_RATE}


def _chain(value) -> tuple[str, ...]:
    """A stand-in selection as a tuple of names tried in order (a name, a list of names, or None)."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def configure(dir=None, seed_dirs=(), mirrors=(), allow_download=False, stand_ins=None,
              download_deadline=DEADLINE, download_min_rate=MIN_RATE, **_ignored) -> None:
    """Process-wide defaults of :func:`load` (the workflow passes its ``data`` config section here).

    ``download_deadline`` (seconds per file) and ``download_min_rate`` (bytes per second over each minute)
    bound a download (:class:`~bilevel.data.store.DataStore`).

    ``stand_ins`` maps an official dataset to the stand-in to use when its files are absent, e.g.
    ``{"australian": "creditcard"}``, or to a list tried in order (the first whose data is present),
    e.g. ``{"fc100": ["omniglot-small", "glyphs"]}``; a stand-in is only ever used when selected here
    or by argument.
    """
    stand_ins = {k: _chain(v) for k, v in (stand_ins or {}).items()}
    named = {n for chain in stand_ins.values() for n in chain}
    unknown = sorted(set(stand_ins) - set(DATASETS)) + sorted(named - set(DATASETS))
    if unknown:
        raise KeyError(f"data.stand_ins: unknown dataset(s) {', '.join(unknown)}; available: {', '.join(sorted(DATASETS))}")
    _DEFAULTS.update(data_dir=dir, seed_dirs=tuple(seed_dirs or ()), mirrors=tuple(mirrors or ()),
                     allow_download=bool(allow_download), stand_ins=stand_ins, download_deadline=download_deadline,
                     download_min_rate=download_min_rate)


def load(name: str, splits=None, *, data_dir=None, seed_dirs=None, mirrors=None, allow_download=None,
         stand_in: str | list[str] | None = None, progress=True, store: DataStore | None = None) -> Dataset:
    """Load dataset ``name`` (all splits, or those in ``splits``) as tensors.

    Unset keyword arguments take the defaults of :func:`configure`. When the official files are
    absent, no exact offline route exists and downloads are off, the stand-in ``stand_in`` (or the
    configured one; the first present one of a list) is loaded if one is selected -- its
    :attr:`Dataset.label` says so -- otherwise
    :class:`MissingDataError` names each missing file with its checksum and URL. A copy with a wrong
    checksum is reported with both checksums and never used.
    """
    chain = _chain(stand_in) or _DEFAULTS["stand_ins"].get(name, ())
    try:
        return _load(name, splits, store or DataStore(
            _DEFAULTS["data_dir"] if data_dir is None else data_dir,
            _DEFAULTS["seed_dirs"] if seed_dirs is None else seed_dirs,
            mirrors=_DEFAULTS["mirrors"] if mirrors is None else mirrors,
            allow_download=_DEFAULTS["allow_download"] if allow_download is None else allow_download,
            progress=progress, deadline=_DEFAULTS["download_deadline"], min_rate=_DEFAULTS["download_min_rate"]))
    except MissingDataError as err:
        if not chain:
            raise
        failures = [str(err)]
        for candidate in chain:
            try:
                ds = load(candidate, None, data_dir=data_dir, seed_dirs=seed_dirs, mirrors=mirrors,
                          allow_download=allow_download, stand_in=(), progress=progress, store=store)
            except MissingDataError as absent:
                failures.append(str(absent))
                continue
            log.warning("%s; using the configured stand-in %s", failures[0], ds.label)
            return ds
        raise MissingDataError("; and no configured stand-in is present: ".join(failures)) from None


def _load(name: str, splits, store: DataStore) -> Dataset:
    spec = get(name)
    chosen = tuple(spec.files) if splits is None else tuple([splits] if isinstance(splits, str) else splits)
    files = spec.split_files(chosen)
    if not files:  # a package-only dataset (labelled stand-in)
        return _note_usage(_from_route(spec, chosen, files=[]))
    earlier_rejections = len(store.rejected)  # a shared store may hold rejections of other datasets' files
    located = {f.key: loc for f in files if (loc := store.find(f)) is not None}
    missing = [f for f in files if f.key not in located]
    if missing and spec.offline and spec.offline_verified and len(store.rejected) == earlier_rejections:
        return _note_usage(_from_route(spec, chosen, files=[]))
    if missing:
        if not store.allow_download:
            raise MissingDataError(f"dataset {name!r}: " + store.missing_message(
                missing, found=[loc.spec for loc in located.values()]))
        for f in missing:
            located[f.key] = store.fetch(f)
    ordered = [located[f.key] for f in files]
    memo_key = (name, chosen, tuple(loc.sha256 for loc in ordered))
    if memo_key not in _MEMO:  # decoded arrays are shared between loads of identical files
        arrays, meta = _ASSEMBLERS[name]({loc.spec.key: loc.path for loc in ordered}, chosen)
        checksum = offline.array_checksum(arrays)
        if spec.array_sha256 and checksum != spec.array_sha256:
            raise DataError(f"dataset {name!r}: loaded values have array sha256 {checksum}, expected "
                            f"{spec.array_sha256} (files {', '.join(loc.spec.key for loc in ordered)})")
        _MEMO[memo_key] = (_to_tensors(arrays), meta, checksum)
    tensors, meta, checksum = _MEMO[memo_key]
    # a new record each time: the files' paths and origins are those of THIS lookup
    return _note_usage(Dataset(spec, tensors, ordered, "official files", meta, checksum))


def _from_route(spec: DatasetSpec, splits, files) -> Dataset:
    memo_key = (spec.name, tuple(splits), "route")
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    arrays, source = offline.ROUTES[spec.offline]()
    arrays = {s: arrays[s] for s in splits}
    checksum = offline.array_checksum(arrays)
    if spec.offline_verified:
        if checksum != spec.array_sha256:
            raise DataError(f"dataset {spec.name!r}: the offline rebuild from {source} does not reproduce the official "
                            f"values (array sha256 {checksum}, official {spec.array_sha256}); it is not used. Provide "
                            f"the official file instead.")
        source += f"; values identical to the official file (array sha256 {checksum})"
    ds = Dataset(spec, _to_tensors(arrays), files, source, {}, checksum)
    _MEMO[memo_key] = ds
    return ds


def _to_tensor(a):
    if hasattr(a, "tocsr"):  # scipy sparse
        a = a.tocsr()
        return torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)),
                                       torch.from_numpy(a.indices.astype(np.int64)), torch.from_numpy(a.data),
                                       size=a.shape)
    return torch.from_numpy(np.ascontiguousarray(a))


def _to_tensors(arrays: dict) -> dict:
    return {s: {k: _to_tensor(v) for k, v in d.items()} for s, d in arrays.items()}


# -- assemblers: files -> {split: {key: array}}, meta ------------------------------------------------


def _libsvm(n_features):
    def assemble(paths, splits):
        (path,) = paths.values()
        X, y = formats.read_svmlight(path, n_features=n_features)
        return {"all": {"x": X, "y": y}}, {}
    return assemble


def _idx(folder):
    names = {"train": "train", "test": "t10k"}

    def assemble(paths, splits):
        out = {}
        for split in splits:
            x = formats.read_idx(paths[f"{folder}/{names[split]}-images-idx3-ubyte.gz"])
            y = formats.read_idx(paths[f"{folder}/{names[split]}-labels-idx1-ubyte.gz"]).astype(np.int64)
            if len(x) != len(y):
                raise DataError(f"{folder} {split}: {len(x)} images but {len(y)} labels")
            out[split] = {"x": x[:, None], "y": y}
        return out, {"classes": list(range(10))}
    return assemble


def _newsgroups(paths, splits):
    (path,) = paths.values()
    data, names = formats.read_20newsgroups(path)
    return {s: {"x": data[s][0], "y": data[s][1].astype(np.int64)} for s in splits}, {"classes": names}


def _fc100(paths, splits):
    cifar = formats.read_cifar100(paths["cifar100/cifar-100-python.tar.gz"])
    out, meta = {}, {"fine_names": cifar["fine_names"]}
    for split in splits:
        part = formats.fc100_split(cifar, paths[f"fc100/{split}.json"])
        out[split] = {"x": part["x"], "y": part["y"]}
        meta[split] = {"classes": part["classes"], "superclasses": part["superclasses"]}
    return out, meta


def _miniimagenet(paths, splits):
    out, meta = {}, {}
    for split in splits:
        part = formats.read_miniimagenet(paths[f"miniimagenet/mini-imagenet-cache-{split}.pkl"])
        out[split] = {"x": part["x"], "y": part["y"]}
        meta[split] = {"classes": part["classes"]}
    return out, meta


def _omniglot(file_of_split):
    def assemble(paths, splits):
        out, meta = {}, {}
        for split in splits:
            characters: dict = {}
            for file in file_of_split[split]:
                for key, drawings in formats.read_omniglot_zip(paths[f"omniglot/{file}"]).items():
                    characters.setdefault(key, drawings)  # a character present in two zips is kept once
            keys = sorted(characters)
            out[split] = {"x": np.stack([characters[k] for k in keys]), "y": np.arange(len(keys), dtype=np.int64)}
            meta[split] = {"characters": [f"{a}/{c}" for a, c in keys],
                           "alphabets": sorted({a for a, _ in keys})}
        return out, meta
    return assemble


_ASSEMBLERS = {
    "breast-cancer": _libsvm(10),
    "australian": _libsvm(14),
    "mnist": _idx("mnist"),
    "fashion-mnist": _idx("fashion-mnist"),
    "20newsgroups": _newsgroups,
    "fc100": _fc100,
    "miniimagenet": _miniimagenet,
    "omniglot": _omniglot({"background": ["images_background.zip"], "evaluation": ["images_evaluation.zip"]}),
    "omniglot-small": _omniglot({"background": ["images_background_small1.zip", "images_background_small2.zip"]}),
}
