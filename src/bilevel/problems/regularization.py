"""Learnable l2 regularisation: one hyper-parameter per feature of a (multi-class) linear classifier.

FSBA Figure 3's problem, as coded for 20 Newsgroups by hypertorch / stocBiO / F2BA (``specs/fsba.md``
§9.4): lower variable ``y = W ∈ R^{d×C}`` (no bias), upper variable ``x ∈ R^d`` initialised at 0::

    g(x, W) = CE(train; W) + ½ · mean_{j,c}(exp(x_j) W_jc²)       (``reduction="mean"``, as the references)
    f(x, W) = CE(validation; W)

``reduction="sum"`` uses ``½ Σ exp(x_j) W_jc²`` instead (a stronger, better-conditioned regulariser).
Two classes give logistic regression with one weight vector. Splits are stratified and drawn by the
seed (fractions or row counts).

Metrics: every metric of x is judged at one *common model* ``y_c(x) = argmin_W g(x, W)`` (training data
only; :func:`~bilevel.problems.implicit.common_model`: full-Hessian Newton up to 200 parameters, matrix-free
Newton-CG above, to ``model_tol`` on ‖∇_W g‖, always from the same start: the model at x0, itself solved
from W = 0), never at the method's inner iterate (for F2BA and the FSBA family that iterate minimises f +
λg, partly fit on the validation set): ``validation_loss`` = f(x, y_c(x)) (the estimate of Ψ(x)),
``test_accuracy``, ``test_loss``, ``model_grad_norm`` = ‖∇_W g(x, y_c(x))‖ (the solver's residual), and
``mean_log_regularization`` = mean of x. Diagnostics of the method's own iterate, with explicit names:
``iterate_test_accuracy``, ``iterate_test_loss``, and ``upper_objective`` = f(x, y)
(:func:`bilevel.run.default_metrics`).

Offline, 20 Newsgroups cannot be obtained (``specs/datasets.md`` §3.5); its stand-in (a) is a real image
set with one hyper-parameter per pixel. ``stands_in_for`` names the official dataset the chosen one
replaces, so every output is labelled ``STAND-IN: <dataset> for <official>``.
"""

from __future__ import annotations

import torch

from .. import data
from ..limits import names_or_none
from .base import BilevelProblem
from .implicit import MODEL_SOLVERS, MODEL_TOL, common_model
from .linear import LinearModel, load_rows, model_metrics, stratified_split, take
from .registry import register

REDUCTIONS = ("mean", "sum")


@register("feature_regularization", limits={
    "dataset": "string", **dict.fromkeys(("train", "val", "test"), "positive"), "reduction": REDUCTIONS,
    "scale": "boolean", "stands_in_for": "string or None", "model_solver": MODEL_SOLVERS, "model_tol": "positive",
    "rows_from": names_or_none, "seed": "counts"})
def make_feature_regularization(dataset: str = "20newsgroups", train: float | int = 0.5, val: float | int = 0.25,
                                test: float | int = 0.25, reduction: str = "mean", scale: bool = True,
                                rows_from: list[str] | None = None,
                                stands_in_for: str | None = None, model_solver: str = "auto",
                                model_tol: float = MODEL_TOL, seed: int = 0, dtype: torch.dtype = torch.float64,
                                device: str | torch.device = "cpu") -> BilevelProblem:
    """The problem on ``dataset`` (rows split into train / validation / test); ``model_solver`` (``"auto"``,
    ``"newton"``, ``"newton-cg"``) and ``model_tol`` choose the common model's solver."""
    if stands_in_for is not None and stands_in_for not in data.available():
        raise ValueError(f"feature_regularization: stands_in_for={stands_in_for!r} is not a registered dataset")
    rows = load_rows(dataset, scale, rows_from)
    parts = stratified_split(rows.classes, {"train": train, "val": val, "test": test}, seed)
    A = {k: take(rows.features, idx).to(dtype=dtype, device=device) for k, idx in parts.items()}
    B = {k: rows.classes[idx].to(device=device) for k, idx in parts.items()}
    model = LinearModel(A["train"].shape[1], rows.n_classes, bias=False)
    scale_reg = 0.5 / model.size if reduction == "mean" else 0.5

    def g(x, y, batch=None):
        a, b = (A["train"], B["train"]) if batch is None else (A["train"][batch], B["train"][batch])
        W = y.reshape(model.d, model.outputs)
        return torch.mean(model.losses(a, b, y)) + scale_reg * torch.sum(torch.exp(x)[:, None] * W * W)

    def f(x, y, batch=None):
        a, b = (A["val"], B["val"]) if batch is None else (A["val"][batch], B["val"][batch])
        return torch.mean(model.losses(a, b, y))

    x0, y0 = torch.zeros(model.d, dtype=dtype, device=device), torch.zeros(model.size, dtype=dtype, device=device)
    common = common_model(g, y0, model_solver, model_tol, anchor=x0)
    info = rows.info
    if stands_in_for is not None and stands_in_for != rows.dataset.name:
        official = data.get(stands_in_for).name
        info = {"dataset": rows.dataset.name, "stand_in_for": official,
                "dataset_label": f"STAND-IN: {rows.dataset.name} for {official}"}
    return BilevelProblem(
        f=f, g=g, x0=x0, y0=y0,
        n_samples={"f": len(parts["val"]), "g": len(parts["train"])},
        name=f"feature_regularization[{info['dataset_label']}]",
        info={**info, "rows": {k: len(v) for k, v in parts.items()}, "features": model.d, "classes": rows.n_classes,
              "reduction": reduction, "seed": int(seed), "model_solver": common.solver, "model_tol": common.tol,
              "metrics": {
                  **model_metrics(model, (A["test"], B["test"]), f, common),
                  "mean_log_regularization": lambda p, x, y: float(x.mean()),
              }},
    )
