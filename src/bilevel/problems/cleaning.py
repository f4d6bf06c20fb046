"""Data cleaning (hyper-cleaning): learn one weight per training sample of a label-corrupted set.

Franceschi et al. 2017's template as used by FSBA Figures 2, 5, 6(b), 7, 8 (``specs/fsba.md`` §9.1, F-4,
F-7). With ``w(x_i) = σ(x_i)`` (sigmoid, smooth and unconstrained: suits a cubic step) and a linear
classifier ``y`` (:class:`~bilevel.problems.linear.LinearModel`: logistic for 2 classes, softmax
otherwise)::

    g(x, y) = (1/n) Σ_{i ∈ train} σ(x_i) ℓ_i(y) + μ ‖y‖²      (lower level: weighted, corrupted training loss)
    f(x, y) = (1/m) Σ_{i ∈ val} ℓ_i(y)                          (upper level: clean validation loss)

Corruption (our choice, F-4): exactly ``round(noise · n)`` training samples, drawn by the seed, get a
wrong label (``noise_model="flip"``: binary labels flipped, multi-class labels moved to a uniformly drawn
*other* class, as stocBiO), so the corrupted set is known exactly; ``noise_model="uniform"`` redraws the
label uniformly (F2BA's code; it may coincide with the true one, and only changed labels count as
corrupted). Validation and test labels are clean. μ = 0.001 on the squared norm (stocBiO, F2BA).

Metrics (``info["metrics"]``). Every metric of the upper-level decision x is judged at one *common model*
``y_c(x) = argmin_y g(x, y)`` (training data only; :func:`~bilevel.problems.implicit.common_model`: the
closed form's ``y*(x)`` when it is on, else full-Hessian Newton up to 200 classifier parameters and
matrix-free Newton-CG above, to ``model_tol`` on ‖∇_y g‖, always from the same start: the model at x0,
itself solved from y0), never at the method's inner iterate (for the penalty methods F2BA and the FSBA
family that iterate minimises f + λg, so it is partly fit on the validation set): ``validation_loss`` = f(x,
y_c(x)) (the estimate of Ψ(x); equal to ``hyperobjective`` where the closed form is on), ``test_accuracy`` /
``test_loss`` of the classifier y_c(x) trained with the current weights, ``model_grad_norm`` = ‖∇_y g(x,
y_c(x))‖ (the solver's residual); ``corrupted_downweighted`` / ``clean_downweighted``: the fraction of
corrupted / clean samples whose weight σ(x_i) fell below ``downweight_below`` (default: the initial weight
σ(x0) = 0.5), i.e. "did it find the noisy labels?"; ``corrupted_in_lowest``: the fraction of corrupted
samples among the k samples with the lowest weights, k = number of corrupted samples (threshold-free; chance
= the noise rate, ties shared, so it equals the noise rate at x0; 1 = every corrupted sample ranked below
every clean one); ``unweighted_test_accuracy`` / ``unweighted_test_loss``: the baseline trained on the
corrupted set with every weight 1 (a constant of the instance, exact by Newton; computed for classifiers of
up to 2,000 parameters, i.e. not for MNIST's softmax regression). Diagnostics of the method's own iterate y,
with explicit names: ``iterate_test_accuracy`` / ``iterate_test_loss``, and ``upper_objective`` = f(x, y)
(:func:`bilevel.run.default_metrics`).
"""

from __future__ import annotations

import torch

from ..limits import names_or_none
from .base import BilevelProblem
from .implicit import MODEL_SOLVERS, NewtonClosedForm, common_model
from .linear import LinearModel, load_rows, model_metrics, stratified_split, take
from .registry import register

NOISE_MODELS = ("flip", "uniform")
#: default ``model_tol`` on ‖∇_y g(x, y_c(x))‖: with the strong convexity 2μ = 2e-3 it bounds ‖y_c − y*‖ by
#: 5e-3, about the bound of feature_regularization's 1e-6 (strong convexity 1.3e-4); measured on the default
#: Figure 5 problem at IFSBA and F2BA iterates: f(x, y_c) and the test loss within 5e-6 of their values at
#: 1e-10, 75-85 Hessian-vector products per solve from y_c(x0) (95-120 at 1e-6)
MODEL_TOL = 1e-5


def corrupt_labels(classes: torch.Tensor, n_classes: int, noise: float, generator: torch.Generator,
                   model: str = "flip") -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with ``round(noise · n)`` samples relabelled; returns (labels, boolean mask of corrupted rows)."""
    if model not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {', '.join(NOISE_MODELS)}, got {model!r}")
    n = len(classes)
    chosen = torch.randperm(n, generator=generator)[: int(round(noise * n))]
    noisy = classes.clone()
    if model == "flip":
        shift = torch.randint(1, n_classes, (len(chosen),), generator=generator)
        noisy[chosen] = (classes[chosen] + shift) % n_classes
    else:
        noisy[chosen] = torch.randint(0, n_classes, (len(chosen),), generator=generator)
    return noisy, noisy != classes


def corrupted_in_lowest(weights: torch.Tensor, corrupted: torch.Tensor) -> float:
    """Fraction of corrupted samples among the k lowest weights (k = #corrupted); tied weights at the
    cut-off share the remaining places (so all-equal weights give the corrupted fraction)."""
    k = int(corrupted.sum())
    if k == 0:
        return float("nan")
    cut = torch.sort(weights).values[k - 1]
    below, at = weights < cut, weights == cut
    share = (k - int(below.sum())) / int(at.sum())
    return float((corrupted & below).sum() + share * (corrupted & at).sum()) / k


@register("data_cleaning", limits={
    "dataset": "string", "noise": "[0, 1)", "noise_model": NOISE_MODELS,
    **dict.fromkeys(("train", "val", "test"), "positive"), "mu": "positive", "scale": "boolean",
    "x0_value": "number", "downweight_below": "number or None", "closed_form": "boolean or None",
    "model_solver": MODEL_SOLVERS, "model_tol": "positive", "rows_from": names_or_none, "seed": "counts"})
def make_data_cleaning(dataset: str = "breast-cancer", noise: float = 0.25, noise_model: str = "flip",
                       train: float | int = 0.5, val: float | int = 0.25, test: float | int = 0.25,
                       mu: float = 1e-3, scale: bool = True, rows_from: list[str] | None = None,
                       x0_value: float = 0.0,
                       downweight_below: float | None = None, closed_form: bool | None = None,
                       model_solver: str = "auto", model_tol: float = MODEL_TOL,
                       seed: int = 0, dtype: torch.dtype = torch.float64,
                       device: str | torch.device = "cpu") -> BilevelProblem:
    """The data-cleaning problem on ``dataset``; ``train``/``val``/``test`` are fractions or row counts of the
    rows of ``rows_from`` (:func:`~bilevel.problems.linear.load_rows`).

    ``closed_form`` (default: on when the classifier has at most 200 parameters) enables the exact
    ``y*(x)``, ∇Ψ and Ψ by Newton's method (metrics ``hypergrad_norm2``, ``hyperobjective``, and the common
    model is y*(x)). ``model_solver`` (``"auto"``, ``"newton"``, ``"newton-cg"``) and ``model_tol`` (on
    ‖∇_y g(x, y_c)‖) choose the common model's solver; ``"auto"`` with the closed form on uses its y*(x)
    (Newton to 1e-10), an explicit solver its own solve to ``model_tol``.
    """
    rows = load_rows(dataset, scale, rows_from)
    parts = stratified_split(rows.classes, {"train": train, "val": val, "test": test}, seed)
    gen = torch.Generator().manual_seed(int(seed) + 7919)  # corruption stream, separate from the split's
    noisy, corrupted = corrupt_labels(rows.classes[parts["train"]], rows.n_classes, noise, gen, noise_model)
    A = {k: take(rows.features, idx).to(dtype=dtype, device=device) for k, idx in parts.items()}
    B = {k: rows.classes[idx].to(device=device) for k, idx in parts.items()}
    B["train"] = noisy.to(device=device)
    corrupted = corrupted.to(device=device)
    model = LinearModel(A["train"].shape[1], rows.n_classes)
    mu = float(mu)

    def g(x, y, batch=None):
        a, b, w = (A["train"], B["train"], x) if batch is None else (A["train"][batch], B["train"][batch], x[batch])
        return torch.mean(torch.sigmoid(w) * model.losses(a, b, y)) + mu * torch.dot(y, y)

    def f(x, y, batch=None):
        a, b = (A["val"], B["val"]) if batch is None else (A["val"][batch], B["val"][batch])
        return torch.mean(model.losses(a, b, y))

    x0 = torch.full((len(parts["train"]),), float(x0_value), dtype=dtype, device=device)
    y0 = torch.zeros(model.size, dtype=dtype, device=device)
    exact = NewtonClosedForm(f, g, y0) if (closed_form if closed_form is not None else model.size <= 200) else None
    common = exact.solver if exact is not None and model_solver == "auto" else \
        common_model(g, y0, model_solver, model_tol, anchor=x0)

    threshold = float(torch.sigmoid(torch.tensor(float(x0_value)))) if downweight_below is None \
        else float(downweight_below)

    def downweighted(mask):
        count = int(mask.sum())
        return lambda p, x, y: float((torch.sigmoid(x[mask]) < threshold).double().mean()) if count else float("nan")

    unweighted = NewtonClosedForm(f, lambda x, y: torch.mean(model.losses(A["train"], B["train"], y)) + mu * torch.dot(y, y),
                                  y0).y_star(x0) if model.size <= 2000 else None
    baseline = {} if unweighted is None else {
        "unweighted_test_accuracy": model.accuracy(A["test"], B["test"], unweighted),
        "unweighted_test_loss": float(torch.mean(model.losses(A["test"], B["test"], unweighted)))}
    metrics = {
        **model_metrics(model, (A["test"], B["test"]), f, common),
        "corrupted_downweighted": downweighted(corrupted),
        "clean_downweighted": downweighted(~corrupted),
        "corrupted_in_lowest": lambda p, x, y: corrupted_in_lowest(x, corrupted),
        **{k: (lambda p, x, y, v=v: v) for k, v in baseline.items()},
    }
    return BilevelProblem(
        f=f, g=g, x0=x0, y0=y0, n_samples={"f": len(parts["val"]), "g": len(parts["train"])},
        closed_form=None if exact is None else exact.closed_form(),
        name=f"data_cleaning[{rows.dataset.label}, noise={noise:g}]",
        info={**rows.info, "rows": {k: len(v) for k, v in parts.items()}, "features": model.d,
              "classes": rows.n_classes, "noise": float(noise), "noise_model": noise_model,
              "corrupted": int(corrupted.sum()), "corrupted_mask": corrupted, "mu": mu, "seed": int(seed),
              "closed_form": exact is not None, "model_solver": common.solver, "model_tol": common.tol,
              "downweight_below": threshold, **baseline, "metrics": metrics},
    )
