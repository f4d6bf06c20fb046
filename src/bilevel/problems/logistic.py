"""Logistic regression with one l2 hyper-parameter per feature, on a real dataset.

Lower level (training loss, strongly convex in y for every x):

    g(x, y) = (1/n) Σ_{i ∈ train} log(1 + exp(-b_i a_iᵀ y)) + ½ Σ_j exp(x_j) y_j²

Upper level (validation loss): f(x, y) = (1/m) Σ_{i ∈ val} log(1 + exp(-b_i a_iᵀ y)).

This is the hyper-parameter-optimisation problem of FSBA Figure 3 (one regularisation weight per
feature, ``specs/fsba.md`` §9.4) and of benchopt's covtype benchmark (``specs/datasets.md`` §3.11),
here on any binary dataset of :mod:`bilevel.data`. Choices (parameters): the split of the rows
(random by ``seed``, fractions ``train_fraction`` / ``val_fraction``, the rest is the test set),
``scale`` = LIBSVM ``svm-scale`` to [-1, 1] (the ``*_scale`` versions of the LIBSVM files), labels
mapped to ±1 (the larger label is +1). Closed forms for metrics: ``y*(x)`` by Newton's method to
``newton_tol`` and the implicit-function hypergradient

    ∇Ψ(x) = -∇²_{xy} g · [∇²_{yy} g]⁻¹ ∇_y f = -exp(x) ⊙ y* ⊙ ([∇²_{yy} g]⁻¹ ∇_y f)   (∇_x f = 0).
"""

from __future__ import annotations

import torch

from .. import data
from ..data.formats import svm_scale
from .base import BilevelProblem, ClosedForm
from .registry import register


def _logistic_loss(features, signs, y):
    return torch.nn.functional.softplus(-signs * (features @ y)).mean()


@register("l2_logistic", limits={"dataset": "string", "train_fraction": "(0, 1)", "val_fraction": "(0, 1)",
                                 "scale": "boolean", "newton_tol": "positive", "seed": "counts"})
def make_l2_logistic(dataset: str = "breast-cancer", train_fraction: float = 0.5, val_fraction: float = 0.25,
                     scale: bool = True, newton_tol: float = 1e-12, seed: int = 0,
                     dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> BilevelProblem:
    """The problem on ``dataset`` (a binary dataset of :func:`bilevel.data.load`; stand-ins as configured)."""
    if train_fraction + val_fraction > 1:
        raise ValueError(f"l2_logistic: train_fraction={train_fraction} + val_fraction={val_fraction} exceeds 1")
    ds = data.load(dataset)
    split = "all" if "all" in ds.splits else "train"
    features = ds[split]["x"].to(torch.float64).reshape(len(ds[split]["y"]), -1)
    labels = ds[split]["y"]
    classes = torch.unique(labels)
    if len(classes) != 2:
        raise ValueError(f"l2_logistic needs a binary dataset; {ds.label} has {len(classes)} classes")
    if scale:
        features = torch.from_numpy(svm_scale(features.numpy()))
    signs = torch.where(labels == classes.max(), 1.0, -1.0).to(torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(signs), generator=gen)
    n_train = int(round(train_fraction * len(order)))
    n_val = int(round(val_fraction * len(order)))
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    A = {k: features[idx].to(dtype=dtype, device=device) for k, idx in parts.items()}
    b = {k: signs[idx].to(dtype=dtype, device=device) for k, idx in parts.items()}
    dim = features.shape[1]

    def g(x, y, batch=None):
        a, s = (A["train"], b["train"]) if batch is None else (A["train"][batch], b["train"][batch])
        return _logistic_loss(a, s, y) + 0.5 * torch.sum(torch.exp(x) * y * y)

    def f(x, y, batch=None):
        a, s = (A["val"], b["val"]) if batch is None else (A["val"][batch], b["val"][batch])
        return _logistic_loss(a, s, y)

    def inner_hessian(x, y):
        p = torch.sigmoid(b["train"] * (A["train"] @ y))
        weights = p * (1 - p) / len(p)
        return (A["train"].T * weights) @ A["train"] + torch.diag(torch.exp(x))

    @torch.enable_grad()
    def y_star(x):
        y = torch.zeros(dim, dtype=dtype, device=device)
        for _ in range(100):
            yy = y.detach().requires_grad_(True)
            grad = torch.autograd.grad(g(x.detach(), yy), yy)[0]
            if float(torch.linalg.vector_norm(grad)) < newton_tol:
                break
            y = y - torch.linalg.solve(inner_hessian(x, y), grad)
        return y.detach()

    @torch.enable_grad()
    def hypergradient(x):
        y = y_star(x).requires_grad_(True)
        grad_f = torch.autograd.grad(f(x.detach(), y), y)[0]
        v = torch.linalg.solve(inner_hessian(x, y.detach()), grad_f)
        return -torch.exp(x) * y.detach() * v

    def value(x):
        return f(x, y_star(x)).detach()

    zeros = torch.zeros(dim, dtype=dtype, device=device)
    return BilevelProblem(
        f=f, g=g, x0=zeros, y0=zeros, n_samples={"f": len(parts["val"]), "g": len(parts["train"])},
        closed_form=ClosedForm(y_star=y_star, hypergradient=hypergradient, value=value),
        name=f"l2_logistic[{ds.label}]",
        info={"dataset": ds.name, "stand_in_for": ds.stand_in_for, "dataset_label": ds.label,
              "rows": {k: len(v) for k, v in parts.items()}, "features": dim, "scale": scale, "seed": int(seed)},
    )
