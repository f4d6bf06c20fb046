"""Linear classifiers on a real dataset: rows, stratified splits, losses and accuracy.

Shared by the data-cleaning (:mod:`.cleaning`) and per-feature regularisation
(:mod:`.regularization`) problems. Conventions:

- rows: tabular features scaled column-wise to [−1, 1] (LIBSVM ``svm-scale``, the ``*_scale`` files,
  ``specs/fsba.md`` F-4); images flattened and divided by 255; labels mapped to ``0..C−1`` in sorted
  order of the original labels (breast-cancer 2 → 0, 4 → 1; australian −1 → 0, +1 → 1);
- splits: stratified by class and drawn by the seed (F-4), given as fractions or as row counts;
- model: ``C = 2`` classes → logistic regression, parameters ``(w, b)`` of size ``d + 1`` (``bias``) and
  the loss ``softplus(−s·(aᵀw + b))`` with signs ``s = ±1``; ``C > 2`` → softmax regression, a
  ``d × C`` matrix (plus ``C`` biases), cross-entropy. Both are convex in the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import data
from ..data.formats import svm_scale


@dataclass
class Rows:
    """Features (float64, one row per sample), class indices and the dataset's provenance label."""

    features: torch.Tensor
    classes: torch.Tensor
    n_classes: int
    dataset: data.Dataset

    @property
    def info(self) -> dict:
        return {"dataset": self.dataset.name, "stand_in_for": self.dataset.stand_in_for,
                "dataset_label": self.dataset.label}


def load_rows(dataset: str, scale: bool = True, rows_from: list[str] | None = None) -> Rows:
    """Rows of ``dataset``: the union of its splits ``rows_from`` (default: the test split when the dataset
    has one, e.g. the 10,000 official MNIST test images — the file available offline — else all rows).
    A configured stand-in is used, and labelled, when the files are absent. Sparse features (20 Newsgroups)
    stay sparse (COO) and are not rescaled (they are L2-normalised already)."""
    spec = data.get(dataset)
    if rows_from is not None:
        unknown = sorted(set(rows_from) - set(spec.files))
        if unknown:
            raise ValueError(f"rows_from: {dataset} has no split(s) {', '.join(unknown)}; splits: {', '.join(spec.files)}")
    wanted = list(rows_from) if rows_from is not None else (["test"] if "test" in spec.files else None)
    ds = data.load(dataset, wanted)
    chosen = [s for s in (wanted or []) if s in ds.splits] or \
        [next(s for s in ("test", "all", "train") if s in ds.splits)]  # a stand-in has its own splits
    labels = torch.cat([ds[s]["y"] for s in chosen])
    parts = [ds[s]["x"] for s in chosen]
    if parts[0].is_sparse or parts[0].layout == torch.sparse_csr:
        features = torch.cat([p.to_sparse_coo().to(torch.float64) for p in parts]).coalesce()
    elif parts[0].dtype == torch.uint8:  # images
        features = torch.cat([p.reshape(len(p), -1) for p in parts]).to(torch.float64) / 255.0
    else:
        features = torch.cat([p.reshape(len(p), -1) for p in parts]).to(torch.float64)
        if scale:
            features = torch.from_numpy(svm_scale(features.numpy()))
    values = torch.unique(labels)
    classes = torch.searchsorted(values, labels.contiguous()).long()
    return Rows(features, classes, len(values), ds)


def take(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of dense or sparse (COO) features."""
    return features.index_select(0, idx) if features.is_sparse else features[idx]


def stratified_split(classes: torch.Tensor, sizes: dict[str, float | int], seed: int) -> dict[str, torch.Tensor]:
    """Disjoint index sets per part, stratified by class and drawn by ``seed``.

    ``sizes`` maps part names to fractions of all rows (floats in (0, 1]) or to row counts (ints);
    each class contributes in proportion, rounding is settled on the last class so that counts are exact.
    """
    n = len(classes)
    counts, cumulative, edge = {}, 0.0, 0
    for k, v in sizes.items():  # fractions: rounded cumulatively, so 0.5/0.25/0.25 uses every row exactly once
        if isinstance(v, int):
            counts[k] = v
        else:
            cumulative += float(v)
            counts[k], edge = int(round(cumulative * n)) - edge, int(round(cumulative * n))
    if any(c < 1 for c in counts.values()) or sum(counts.values()) > n:
        raise ValueError(f"split sizes {sizes} need at least one row each and at most {n} rows in total")
    gen = torch.Generator().manual_seed(int(seed))
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in counts}
    taken = dict.fromkeys(counts, 0)
    labels = torch.unique(classes)
    for j, c in enumerate(labels):
        idx = torch.nonzero(classes == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        start = 0
        for k, total in counts.items():
            want = total - taken[k] if j == len(labels) - 1 else int(round(total * len(idx) / n))
            want = max(0, min(want, len(idx) - start))
            parts[k].append(idx[start:start + want])
            taken[k] += want
            start += want
    out = {}
    for k, chunks in parts.items():
        idx = torch.cat(chunks)
        if len(idx) != counts[k]:
            raise ValueError(f"split part {k!r}: the classes cannot supply {counts[k]} rows (got {len(idx)})")
        out[k] = idx[torch.randperm(len(idx), generator=gen)]
    return out


class LinearModel:
    """Logistic (2 classes) or softmax (> 2 classes) regression on fixed features; ``y`` is flat."""

    def __init__(self, n_features: int, n_classes: int, bias: bool = True):
        self.d, self.C, self.bias = int(n_features), int(n_classes), bool(bias)
        self.outputs = 1 if self.C == 2 else self.C
        self.size = (self.d + int(self.bias)) * self.outputs

    def scores(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits: ``(n,)`` for logistic regression, ``(n, C)`` for softmax regression."""
        W = y.reshape(self.d + int(self.bias), self.outputs)
        out = features @ W[: self.d]
        if self.bias:
            out = out + W[self.d]
        return out[:, 0] if self.outputs == 1 else out

    def losses(self, features: torch.Tensor, classes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ℓ_i(y): logistic ``softplus(−s_i z_i)`` or cross-entropy."""
        z = self.scores(features, y)
        if self.outputs == 1:
            return torch.nn.functional.softplus(-(2.0 * classes.to(z.dtype) - 1.0) * z)
        return torch.nn.functional.cross_entropy(z, classes, reduction="none")

    def accuracy(self, features: torch.Tensor, classes: torch.Tensor, y: torch.Tensor) -> float:
        z = self.scores(features, y)
        predicted = (z > 0).long() if self.outputs == 1 else z.argmax(1)
        return float((predicted == classes).double().mean())


def model_metrics(model: LinearModel, test: tuple[torch.Tensor, torch.Tensor], f, common) -> dict:
    """Metrics of the upper-level decision x, judged at the common model ``y_c(x) = common(x)`` (the fixed
    lower-level solver of :func:`~bilevel.problems.implicit.common_model`, training data only):
    ``validation_loss`` = f(x, y_c(x)) (the estimate of Ψ(x)), ``test_loss`` / ``test_accuracy`` on
    ``test = (features, classes)``, and ``model_grad_norm`` = ‖∇_y g(x, y_c(x))‖ (the solver's residual).
    Diagnostics of the method's own inner iterate y (for penalty methods partly fit on the validation
    set): ``iterate_test_loss`` / ``iterate_test_accuracy`` (``upper_objective`` = f(x, y) comes from
    :func:`bilevel.run.default_metrics`)."""
    a, b = test

    def test_loss(y):
        return float(torch.mean(model.losses(a, b, y)))

    return {
        "validation_loss": lambda p, x, y: float(f(x, common(x))),
        "test_loss": lambda p, x, y: test_loss(common(x)),
        "test_accuracy": lambda p, x, y: model.accuracy(a, b, common(x)),
        "model_grad_norm": lambda p, x, y: float(common.stats(x)["grad_norm"]),
        "iterate_test_loss": lambda p, x, y: test_loss(y),
        "iterate_test_accuracy": lambda p, x, y: model.accuracy(a, b, y),
    }
