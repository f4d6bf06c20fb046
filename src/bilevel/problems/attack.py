"""Bilevel black-box adversarial attack: a universal perturbation with per-pixel regularisation weights.

Our design (open choice Z-6 of ``specs/zoba.md``; the formulation is the online attack of
``specs/sogd.md`` §7.1 run offline). A trained classifier with class scores Z (:mod:`bilevel.classifiers`)
is queried only through its outputs; the variable ``y`` lives on an ``r × r`` grid, the applied
perturbation is ``δ(y) = ε·tanh(y/ε)`` (per coordinate) upsampled (nearest neighbour) to the image,
``P(y)`` (ZOO's attack-space reduction; r = 28 is the full image)::

    δ(y) = ε tanh(y/ε),   P(y) = upsample(δ(y)),   ‖P(y)‖∞ ≤ ε for every y      (the budget)
    ℓ(a) = max{Z(a)_b − max_{j≠b} Z(a)_j, −κ}                         (untargeted C&W margin, b = label)
    g(x, y; ξ) = mean_{i ∈ ξ ⊂ D_tr} ℓ(a_i + P(y)) + ½ Σ_ι exp(x_ι) δ_ι(y)²   (lower level)
    f(x, y; ζ) = mean_{i ∈ ζ ⊂ D_val} ℓ(a_i + P(y))                      (upper level, held-out images)

so ``x, y ∈ R^{r²}``. One sample is one image: a function value on one sample is one query.

**Perturbation budget** (``epsilon`` = ε; None = no budget, ``δ(y) = y``). ‖P(y)‖∞ ≤ ε is imposed by
the change of variables ``δ = ε tanh(y/ε)`` (Carlini & Wagner 2017, §V.A's box reparametrisation), in
the problem, not by a projection in the methods: every method sees the same smooth, unconstrained
function of ``y`` and needs no code of its own (a projection is method-specific; clamping ``y`` inside
the problem would leave flat regions and kinks that break the finite differences and Stein estimators).
Near 0 the map is the identity (δ'(0) = 1), so smoothing radii keep their meaning; the regulariser acts
on the applied perturbation δ, so in δ the problem is the unconstrained one restricted to the box
``[−ε, ε]^{r²}``. No box is imposed on the perturbed pixels ``a + P(y)`` (images are in [0, 1]).

**Pixel scale** (``pixel_range`` = s of :func:`attack_setup`, default 1; the online attack exposes it, A-6
of ``specs/sogd.md``). The attacker works in units in which the pixel values span a range s: ``y``, ε,
the regulariser and every step size and smoothing radius of a method are in those units, and the
classifier sees ``a + P(y)/s`` (s = 10 is the SOGD paper's literal "we normalize the pixel values to
Y = [−5, 5]^d"). The perturbation metrics are in the same units (so ``‖P(y)‖∞ ≤ ε`` still holds). With
s = 1 the problem is unchanged.

The attacked images are drawn (by the run seed) from the rows the classifier was NOT trained on and
that it classifies correctly, so accuracy under attack starts at 1. Reported metrics (on a third set
``D_test`` the attack never queried): ``accuracy_under_attack``, ``attack_loss_test``,
``perturbation_linf`` = ‖P(y)‖∞ (≤ ε), ``perturbation_l2`` = ‖P(y)‖₂, both of the applied perturbation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import classifiers
from ..limits import is_integer
from .base import BilevelProblem
from .registry import register


def margin_loss(scores: torch.Tensor, labels: torch.Tensor, kappa: float) -> torch.Tensor:
    """``max{Z_b − max_{j≠b} Z_j, −κ}`` per row (≤ 0 once the image is misclassified)."""
    true = scores.gather(-1, labels[..., None])[..., 0]
    others = scores.masked_fill(torch.nn.functional.one_hot(labels, scores.shape[-1]).bool(), float("-inf"))
    return torch.clamp(true - others.max(-1).values, min=-kappa)


def bounded(y: torch.Tensor, epsilon: float | None) -> torch.Tensor:
    """The applied perturbation ``δ(y) = ε tanh(y/ε)``: |δ| ≤ ε for every y (±inf included; ε as rounded to
    y's dtype, float64 in the attack problems), δ ≈ y near 0; ``y`` itself when ``epsilon`` is None."""
    return y if epsilon is None else epsilon * torch.tanh(y / epsilon)


def _divides_28(value) -> str | None:
    """The limit of ``resolution``: the attack perturbs an r x r grid of 28 / r pixel blocks."""
    return None if is_integer(value) and value >= 1 and 28 % value == 0 else "must be an integer dividing 28"


def _classifier_spec(value) -> str | None:
    """The limit of ``classifier``: None or the fields of :class:`~bilevel.classifiers.ClassifierSpec`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be a mapping of classifier settings or None"
    try:
        classifiers.ClassifierSpec(**value)
    except (TypeError, ValueError) as err:
        return f"is not a valid classifier ({err})"
    return None


#: the declared limits shared by both attack problems (:mod:`bilevel.limits`)
ATTACK_LIMITS = {"dataset": "string", "resolution": _divides_28, "kappa": "nonnegative", "epsilon": "positive or None",
                 "x0_value": "number", "classifier": _classifier_spec, "seed": "counts"}


@dataclass
class AttackSetup:
    """What an attack on a trained classifier needs: the class scores ``scores(a)`` (float ``dtype``), the
    images (N, 784) and labels, ``pool`` = indices of the held-out images the classifier gets right (the
    only ones attacked), the upsampling of an ``r × r`` grid to the image, the budget ``epsilon``, the
    dataset and the classifier's provenance record. ``applied(y)`` = δ(y) on the grid, ``perturbation(y)``
    = P(y)/s on the image (s = ``pixel_range``, the range of the pixels in the units of y; 1: the same units)."""

    scores: Callable[[torch.Tensor], torch.Tensor]
    images: torch.Tensor
    labels: torch.Tensor
    pool: torch.Tensor
    resolution: int
    upsample: Callable[[torch.Tensor], torch.Tensor]
    dataset: object
    record: dict
    epsilon: float | None = None
    pixel_range: float = 1.0

    @property
    def dim(self) -> int:
        return self.resolution**2

    def applied(self, y: torch.Tensor) -> torch.Tensor:
        """δ(y) = ε tanh(y/ε) on the ``r × r`` grid."""
        return bounded(y, self.epsilon)

    def perturbation(self, y: torch.Tensor) -> torch.Tensor:
        """P(y)/s = upsample(δ(y))/s, what is added to the images (pixels in [0, 1])."""
        applied = self.upsample(bounded(y, self.epsilon))
        return applied if self.pixel_range == 1.0 else applied / self.pixel_range

    def norms(self) -> dict:
        """The metrics ``perturbation_linf`` / ``perturbation_l2`` of P(y) (in the units of y) as ``metric(y)``."""
        def size(y: torch.Tensor) -> torch.Tensor:
            return self.upsample(bounded(y, self.epsilon))

        return {"perturbation_linf": lambda y: float(size(y).abs().max()),
                "perturbation_l2": lambda y: float(torch.linalg.vector_norm(size(y)))}


def attack_setup(dataset: str, resolution: int, classifier: dict | None, dtype: torch.dtype,
                 device: str | torch.device, what: str = "blackbox_attack",
                 epsilon: float | None = None, pixel_range: float = 1.0) -> AttackSetup:
    """Load (or train once and cache) the classifier of ``dataset`` and the images it may be attacked on;
    ``pixel_range``: the range of the pixels in the units of y and ε (pixel scale, above)."""
    side = 28  # the factories' declared limits (ATTACK_LIMITS) hold resolution to a divisor of 28
    trained = classifiers.classifier_for(dataset, classifier)
    mlp = classifiers.mlp  # bound once: the class scores are on every query's hot path
    params = {k: v.to(dtype=dtype, device=device) for k, v in trained["params"].items()}
    images, labels, order = trained["images"], trained["labels"], trained["order"]
    pool = order[trained["spec"].rows:]
    with torch.no_grad():
        correct = mlp(trained["params"], images[pool].double()).argmax(1) == labels[pool]
    r, factor = int(resolution), side // int(resolution)

    def upsample(y: torch.Tensor) -> torch.Tensor:
        return y.reshape(r, 1, r, 1).expand(r, factor, r, factor).reshape(side * side)

    return AttackSetup(scores=lambda a: mlp(params, a), images=images.to(dtype=dtype, device=device),
                       labels=labels.to(device=device), pool=pool[correct], resolution=r, upsample=upsample,
                       dataset=trained["dataset"], record=trained["record"],
                       epsilon=None if epsilon is None else float(epsilon), pixel_range=float(pixel_range))


@register("blackbox_attack", limits={**ATTACK_LIMITS, **dict.fromkeys(("n_train", "n_val", "n_test"), "at_least_one")})
def make_blackbox_attack(dataset: str = "mnist", resolution: int = 14, n_train: int = 100, n_val: int = 100,
                         n_test: int = 500, kappa: float = 0.0, epsilon: float | None = 0.3,
                         x0_value: float = 0.0, classifier: dict | None = None, seed: int = 0,
                         dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> BilevelProblem:
    """The attack on ``dataset`` (MNIST or its labelled stand-in) against the cached trained classifier;
    ``epsilon`` = ε, the L∞ budget of P(y) (default 0.3, the customary MNIST L∞ budget of Madry et al.
    2018; our choice, Z-6)."""
    setup = attack_setup(dataset, resolution, classifier, dtype, device, epsilon=epsilon)
    pool, need = setup.pool, n_train + n_val + n_test
    if len(pool) < need:
        raise ValueError(f"blackbox_attack: {len(pool)} correctly classified held-out images of "
                         f"{setup.dataset.label}, need n_train + n_val + n_test = {need}")
    chosen = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(int(seed)))[:need]]
    parts = dict(zip(("train", "val", "test"), torch.split(chosen, [n_train, n_val, n_test]), strict=True))
    A = {k: setup.images[idx] for k, idx in parts.items()}
    B = {k: setup.labels[idx] for k, idx in parts.items()}
    perturb, applied, scores = setup.perturbation, setup.applied, setup.scores

    def attack_loss(part: str, y: torch.Tensor, batch) -> torch.Tensor:
        a, b = (A[part], B[part]) if batch is None else (A[part][batch], B[part][batch])
        return margin_loss(scores(a + perturb(y)), b, kappa).mean()

    def g(x, y, batch=None):
        delta = applied(y)
        return attack_loss("train", y, batch) + 0.5 * torch.sum(torch.exp(x) * delta * delta)

    def f(x, y, batch=None):
        return attack_loss("val", y, batch)

    def accuracy(problem, x, y):
        return float((scores(A["test"] + perturb(y)).argmax(1) == B["test"]).double().mean())

    ds, norms = setup.dataset, setup.norms()
    return BilevelProblem(
        f=f, g=g, x0=torch.full((setup.dim,), float(x0_value), dtype=dtype, device=device),
        y0=torch.zeros(setup.dim, dtype=dtype, device=device), n_samples={"f": n_val, "g": n_train},
        name=f"blackbox_attack[{ds.label}]",
        info={"dataset": ds.name, "stand_in_for": ds.stand_in_for, "dataset_label": ds.label,
              "resolution": setup.resolution, "epsilon": setup.epsilon,
              "rows": {k: len(v) for k, v in parts.items()},
              "classifier": setup.record,
              "metrics": {
                  "accuracy_under_attack": accuracy,
                  "attack_loss_test": lambda p, x, y: float(attack_loss("test", y, None)),
                  **{name: (lambda p, x, y, m=m: m(y)) for name, m in norms.items()},
              }},
    )
