"""The online black-box adversarial attack of the SOGD paper (``specs/sogd.md`` §7.1, eqs. 28–29).

Round t receives a training batch ``D^tr_t`` and a validation batch ``D^val_t`` of images the classifier
(:mod:`bilevel.classifiers`, queried only through its class scores Z) gets right, and plays a universal
perturbation: the variable ``y_t`` (on an ``r × r`` grid) is applied as ``δ(y) = ε tanh(y/ε)``, upsampled
to the image, ``P(y)`` (:class:`.attack.AttackSetup`), with per-coordinate regularisation weights
``e^{x_t}``::

    ℓ(a)       = max{Z(a)_b − max_{j≠b} Z(a)_j, −κ}                       (C&W margin, κ = 0)
    g_t(x, y)  = mean_{i ∈ D^tr_t} ℓ(a_i + P(y)) + ½ Σ_ι e^{x_ι} δ_ι(y)²  (eq. 28, lower level)
    f_t(x, y)  = mean_{i ∈ D^val_t} ℓ(a_i + P(y))                          (eq. 29, upper level)

**The constraint set Y (A-6).** §7.1 writes ``y ∈ Y := [−5, 5]^d`` and "we normalize the pixel values to
Y". Read literally, pixels span Y (a range of 10) and the perturbation box is Y too, i.e. a budget of
half the pixel range; the ZO-AdaMM reading (a typo for ``[−0.5, 0.5]``, pixels in ``[−0.5, 0.5]``) gives
the same ratio. Our pixels are in [0, 1], so both readings give ``epsilon`` = ε = 0.5 (the default;
``epsilon: 5`` would be no constraint at all on [0, 1] pixels, ``null`` removes the budget) -- the same
budget in image units, but not the same units of y (pixel scale, below: the literal reading is
``pixel_range: 10, epsilon: 5``). The literal
reading is the one consistent with the paper's observation "max y_t never exceeds 4" (0.8 ε: an
unprojected iterate staying inside Y; under the typo reading it would lie outside Y). Algorithm 2 has
no projection of y, so the box is imposed by the change of variables in the problem (Carlini & Wagner
2017), the same for every method (:mod:`.attack`).

**Pixel scale** (``pixel_range``, A-6; :mod:`.attack`). The budget above fixes only the ratio ε / pixel
range; the units of y do not follow from it. ``pixel_range`` = s expresses y, ε, the regulariser (and so
every step size and smoothing radius of a method) in units in which the pixels span s: the classifier sees
``a + P(y)/s``. s = 1 (default, with ε = 0.5) is the ZO-AdaMM reading (pixels in [−0.5, 0.5]); s = 10 with
ε = 5 is the text as printed (pixels normalised to Y = [−5, 5]^d), under which the regulariser
``½ Σ e^x δ²`` weighs 100 times more against the margin loss and ``∇_x g`` is 100 times larger. The
perturbation metrics are in the units of y (``‖P(y)‖∞ ≤ ε`` for every s).

**The set X of x** (``x_domain``). §5.1 writes ``x ∈ R^d_+`` ("instead of λ"): ``"nonnegative"`` makes the
stream's projection Π_X the clamp at 0 (the weights ``e^x ≥ 1``); ``"real"`` (default) leaves x free.

One sample is one image, so a method's batch of b samples draws b of the round's images (the paper's
estimator has one direction per sample of the round's batch: b_g = ``batch_train``, b_f = ``batch_val``).

The S-stage scenario (open choice S-1, our design; the paper gives no details): the ten classes are split
into ``stages`` consecutive groups (``numpy.array_split``: 0-2, 3-5, 6-7, 8-9 for S = 4); stage s lasts
``stage_length`` rounds and draws every batch from images of its group, so the best perturbation changes
abruptly at each stage boundary (after the last stage the stream starts over at the first). Each stage's
images (correctly classified, never used to train the classifier) are split once, by the seed, into a
test set of ``n_test`` images, a validation pool of ``n_val_pool`` and a training pool (the rest); every
round draws ``batch_train`` / ``batch_val`` distinct images from the pools (the round's generator).

Metrics (at the rounds the runner records, on the current stage's test images, which the attack never
queries): ``accuracy_under_attack`` (Figure 2, middle; 1 at y = 0), ``perturbation_linf`` = ‖P(y_t)‖∞
(Figure 2, right: the applied perturbation, ≤ ε), ``perturbation_l2`` = ‖P(y_t)‖₂, ``attack_loss_test``.
No box is imposed on the perturbed pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from ..limits import integer_in
from .attack import ATTACK_LIMITS, attack_setup, margin_loss
from .base import BilevelProblem
from .online import BilevelStream
from .registry import register

#: the feasible set X of the weights' logarithms x: the box of :class:`.online.BilevelStream` (None: R^d)
X_DOMAINS = {"real": None, "nonnegative": (0.0, float("inf"))}


@register("online_attack", limits={
    **ATTACK_LIMITS, "stages": integer_in(1, 10), "pixel_range": "positive", "x_domain": tuple(X_DOMAINS),
    **dict.fromkeys(("stage_length", "batch_train", "batch_val", "n_test", "n_val_pool"), "at_least_one")})
def make_online_attack(dataset: str = "mnist", resolution: int = 14, stages: int = 4, stage_length: int = 50,
                       batch_train: int = 20, batch_val: int = 20, n_test: int = 100, n_val_pool: int = 50,
                       kappa: float = 0.0, epsilon: float | None = 0.5, x0_value: float = 0.0,
                       pixel_range: float = 1.0, x_domain: str = "real",
                       classifier: dict | None = None, seed: int = 0, dtype: torch.dtype = torch.float64,
                       device: str | torch.device = "cpu") -> BilevelStream:
    """The S-stage online attack stream above on ``dataset`` (MNIST or its labelled stand-in); ``epsilon``
    = ε, the L∞ budget of P(y), and ``pixel_range``, the range of the pixels in the units of y (A-6 above);
    ``x_domain``: X = R^d (``"real"``) or R^d_+ (``"nonnegative"``)."""
    what = "online_attack"
    if x_domain == "nonnegative" and x0_value < 0:
        raise ValueError(f"{what}: x0_value = {x0_value} lies outside X = R^d_+ (x_domain 'nonnegative')")
    if batch_val > n_val_pool:
        raise ValueError(f"{what}: batch_val = {batch_val} exceeds the validation pool n_val_pool = {n_val_pool}")
    setup = attack_setup(dataset, resolution, classifier, dtype, device, what, epsilon=epsilon, pixel_range=pixel_range)
    groups = [torch.as_tensor(g) for g in np.array_split(np.arange(10), int(stages))]
    gen = torch.Generator().manual_seed(int(seed))
    pools = []
    for s, group in enumerate(groups):
        members = setup.pool[torch.isin(setup.labels[setup.pool].cpu(), group)]
        members = members[torch.randperm(len(members), generator=gen)]
        need = n_test + n_val_pool + batch_train
        if len(members) < need:
            raise ValueError(f"{what}: stage {s + 1} (classes {group.tolist()}) has {len(members)} correctly "
                             f"classified held-out images of {setup.dataset.label}, need n_test + n_val_pool + "
                             f"batch_train = {need}")
        pools.append({"test": members[:n_test], "val": members[n_test:n_test + n_val_pool],
                      "train": members[n_test + n_val_pool:]})
    images, labels, perturb, applied, scores = (setup.images, setup.labels, setup.perturbation, setup.applied,
                                                setup.scores)

    def stage_of(t: int) -> int:
        return ((t - 1) // int(stage_length)) % len(groups)

    def loss_on(idx: torch.Tensor, y: torch.Tensor, batch) -> torch.Tensor:
        idx = idx if batch is None else idx[batch]
        return margin_loss(scores(images[idx] + perturb(y)), labels[idx], kappa).mean()

    def make_round(t: int, generator: torch.Generator) -> BilevelProblem:
        pool = pools[stage_of(t)]
        tr = pool["train"][torch.randperm(len(pool["train"]), generator=generator)[:batch_train]]
        va = pool["val"][torch.randperm(len(pool["val"]), generator=generator)[:batch_val]]

        def g(x, y, batch=None):
            delta = applied(y)
            return loss_on(tr, y, batch) + 0.5 * torch.sum(torch.exp(x) * delta * delta)

        def f(x, y, batch=None):
            return loss_on(va, y, batch)

        return BilevelProblem(f=f, g=g, x0=x0, y0=y0, n_samples={"f": batch_val, "g": batch_train},
                              name=f"online_attack[t={t}]", info={"t": t, "stage": stage_of(t) + 1})

    def accuracy(t, x, y):
        test = pools[stage_of(t)]["test"]
        return float((scores(images[test] + perturb(y)).argmax(1) == labels[test]).double().mean())

    x0 = torch.full((setup.dim,), float(x0_value), dtype=dtype, device=device)
    y0 = torch.zeros(setup.dim, dtype=dtype, device=device)
    ds, norms = setup.dataset, setup.norms()
    return BilevelStream(
        make_round=make_round, x0=x0, y0=y0, name=f"online_attack[{ds.label}]", x_box=X_DOMAINS[x_domain],
        info={"dataset": ds.name, "stand_in_for": ds.stand_in_for, "dataset_label": ds.label,
              "resolution": setup.resolution, "epsilon": setup.epsilon, "pixel_range": setup.pixel_range,
              "x_domain": x_domain, "stages": [g.tolist() for g in groups],
              "stage_length": stage_length,
              "classifier": setup.record},
        metrics={"accuracy_under_attack": accuracy,
                 **{name: (lambda t, x, y, m=m: m(y)) for name, m in norms.items()},
                 "attack_loss_test": lambda t, x, y: float(loss_on(pools[stage_of(t)]["test"], y, None))})
