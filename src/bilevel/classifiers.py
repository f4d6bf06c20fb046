"""The image classifier a black-box attack queries: trained once, deterministically, and cached.

``classifier_for(dataset, spec)`` returns a trained multilayer perceptron (float64 for the attack's
finite differences) together with the fixed partition of the dataset's rows it was trained on, so
that attack images are never training images. Training is deterministic (``spec["seed"]``, CPU,
float32, Adam, cross-entropy). The cache (``configure(cache_dir=...)``; the workflow uses
``results/models/``) stores the weights under the sha256 of (dataset label, spec, array checksum);
without a cache directory the classifier is trained in memory (a few seconds).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import data
from .files import atomic_path, config_hash

_CACHE: dict[str, Path | None] = {"dir": None}


@dataclass(frozen=True)
class ClassifierSpec:
    """Multilayer perceptron ``784 → hidden → 10`` (ReLU) and its training; ``rows`` images train it."""

    hidden: int = 128
    epochs: int = 15
    lr: float = 1e-3
    batch_size: int = 64
    rows: int = 3000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size", "rows"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"classifier.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"classifier.lr must be > 0, got {self.lr!r}")


def configure(cache_dir: str | Path | None) -> None:
    """Where trained classifiers are cached (None: no cache)."""
    _CACHE["dir"] = None if cache_dir is None else Path(cache_dir)


def images_of(name: str) -> tuple[torch.Tensor, torch.Tensor, data.Dataset]:
    """All images (N, 784) in [0, 1] and labels of an image dataset (its test split when it has one)."""
    files = data.get(name).files
    ds = data.load(name, ["test"] if "test" in files else None)  # MNIST: the 10,000 test images suffice
    split = next(s for s in ("test", "all", "train") if s in ds.splits)
    x = ds[split]["x"].reshape(len(ds[split]["y"]), -1).to(torch.float32) / 255.0
    return x, ds[split]["y"].long(), ds


def mlp(params: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Class scores ``W2 relu(W1 a + b1) + b2`` of images (…, 784)."""
    hidden = torch.relu(images @ params["w1"].T + params["b1"])
    return hidden @ params["w2"].T + params["b2"]


def partition(n: int, seed: int) -> torch.Tensor:
    """The fixed order of the rows: the first ``spec.rows`` train the classifier, the rest can be attacked."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))


def train(images: torch.Tensor, labels: torch.Tensor, spec: ClassifierSpec) -> dict[str, torch.Tensor]:
    """Deterministic Adam training of the MLP on ``images`` (float32, CPU)."""
    gen = torch.Generator().manual_seed(spec.seed)
    dim, classes = images.shape[1], int(labels.max()) + 1
    params = {"w1": torch.randn(spec.hidden, dim, generator=gen) * (2.0 / dim) ** 0.5,
              "b1": torch.zeros(spec.hidden),
              "w2": torch.randn(classes, spec.hidden, generator=gen) * (1.0 / spec.hidden) ** 0.5,
              "b2": torch.zeros(classes)}
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(params.values(), lr=spec.lr)
    for _ in range(spec.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(order), spec.batch_size):
            idx = order[start:start + spec.batch_size]
            loss = torch.nn.functional.cross_entropy(mlp(params, images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {k: v.detach() for k, v in params.items()}


def training_code() -> str:
    """sha256 of the source of the functions that determine a trained classifier (in the cache key: weights
    trained by other code are never reused)."""
    import hashlib
    import inspect

    return hashlib.sha256("".join(inspect.getsource(fn) for fn in (mlp, partition, train)).encode()).hexdigest()


def _cached(path: Path | None, key: str) -> dict | None:
    """The cached weights at ``path`` when they are readable and were stored under ``key``; else None (an
    unreadable or foreign file is removed, with a log line, and the classifier is trained again)."""
    if path is None or not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
        if stored["record"]["key"] == key:
            return stored
        why = "was stored under another key"
    except Exception as err:  # a truncated or foreign file
        why = f"is unreadable ({type(err).__name__})"
    logging.getLogger(__name__).warning("cached classifier %s %s; training again", path, why)
    path.unlink(missing_ok=True)
    return None


def classifier_for(name: str, spec: ClassifierSpec | dict | None = None) -> dict:
    """The trained classifier of dataset ``name``: ``{"params", "order", "spec", "key", "record"}``.

    ``order`` is the row partition (:func:`partition`); ``record`` holds the training accuracy, the
    held-out accuracy on the remaining rows, the dataset label and the training time.
    """
    spec = spec if isinstance(spec, ClassifierSpec) else ClassifierSpec(**(spec or {}))
    images, labels, ds = images_of(name)
    if spec.rows >= len(labels):
        raise ValueError(f"classifier.rows = {spec.rows} leaves no image of {ds.label} ({len(labels)} rows) to attack")
    key = config_hash({"dataset": ds.label, "arrays": ds.array_sha256 or [f.get("sha256") for f in
                                                                         ds.record()["files"]], "spec": asdict(spec),
                       "code": training_code(), "torch": torch.__version__})
    order = partition(len(labels), spec.seed)
    cache = _CACHE["dir"] / f"{key[:16]}.pt" if _CACHE["dir"] is not None else None
    stored = _cached(cache, key)
    if stored is not None:
        params, record = stored["params"], stored["record"]
    else:
        started = time.perf_counter()
        params = train(images[order[:spec.rows]], labels[order[:spec.rows]], spec)
        with torch.no_grad():
            acc = {part: float((mlp(params, images[idx]).argmax(1) == labels[idx]).double().mean())
                   for part, idx in (("train", order[:spec.rows]), ("held_out", order[spec.rows:]))}
        record = {"dataset": ds.label, "spec": asdict(spec), "key": key, "accuracy": acc,
                  "train_seconds": round(time.perf_counter() - started, 2)}
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache) as tmp:
                torch.save({"params": params, "record": record}, tmp)
    return {"params": {k: v.to(torch.float64) for k, v in params.items()}, "order": order, "spec": spec,
            "key": key, "record": copy.deepcopy(record), "images": images, "labels": labels, "dataset": ds}
