"""Online parametric loss tuning for imbalanced MNIST under distribution shift (SOGD paper, Figure 3).

``specs/sogd.md`` §7.2 (eq. 30, after AutoBalance). The leader tunes 2J logit-adjustment parameters
``x = (Δ_1..Δ_J, γ_1..γ_J)`` (J = 10; start Δ = 0, γ = 1, i.e. plain cross-entropy); the follower is the
flat weight vector ``y`` of a :class:`~bilevel.networks.ConvNet` (4 layers; non-convex, outside the
theory, A-9)::

    g_t(x, y) = mean_{(a,b) ∈ D^tr_t} −log softmax(γ ⊙ Z_y(a) + Δ)_b + (wd/2)‖y‖²        (parametric CE)
    f_t(x, y) = mean_{(a,b) ∈ D^val_t} u_b · (−log softmax(Z_y(a))_b),  u_j = 1/(J π^val_j)  (balanced CE)

``π^val`` are the class shares of the validation pool (balanced here, so u ≡ 1: the spec's "1/proportion",
normalised so that a balanced set has weights 1). ``wd`` = the reference code's SGD weight decay 1e-4.

Stream (the reference code's ``load_mnist_shift_every_100``, scaled, S-3): phase k = 1..4 lasts
``rounds_per_phase`` rounds; its training pool holds the first ``ceil(n_max · μ_k^i)`` images of class i
(i = 0..9) of a seeded order, ``μ = phase_ratios`` (default 0.4, 0.6, 0.8, 1.0 from the code; A-6), and
round t's training batch is the next ``batch_size`` images of the phase's seeded shuffle (reshuffled when
used up). Rounds after the last phase stay in it. Validation: ``n_val`` further images per class
(balanced, disjoint), one batch of ``batch_val`` per round. Test: ``n_test`` images per class from the
test split (or, with a single split, disjoint from the others). ``splits=["train", "test"]`` (paper
scale) takes training and validation images from MNIST-train; the default ``["test"]`` partitions the
10,000 official test images (the only MNIST images available offline) or the labelled stand-in.

Metrics (our choice, after each recorded round; BatchNorm with the statistics of the round's training
batch, as the reference code's momentum-1 running statistics): ``balanced_accuracy`` = mean per-class
recall on the balanced test set (sklearn's ``balanced_accuracy_score``), ``test_accuracy`` = accuracy on
the test images drawn with the current phase's class shares (``ceil(n_test μ_k^i)`` of class i: the
distribution the learner currently faces), ``phase``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..limits import names_or_none, sequence
from ..networks import ConvNet
from .base import BilevelProblem
from .online import BilevelStream
from .registry import register

MEAN, STD = 0.1307, 0.3081  # MNIST normalisation of the reference code


def _images(dataset: str, splits: list[str] | None):
    """``{split: (images (N, 784) in [0, 1], labels)}`` and the dataset record."""
    from .. import data

    ds = data.load(dataset, splits)
    out = {}
    for split, arrays in ds.splits.items():
        out[split] = (arrays["x"].reshape(len(arrays["y"]), -1).to(torch.float32) / 255.0, arrays["y"].long())
    return out, ds




def _split_images(what, parts, ds, classes, n_max, n_val, n_test, gen) -> dict:
    """The seeded per-class orders of the pool, the validation indices and the per-class test images:
    ``{"pool": (x, y), "by_class", "val_idx", "test": (x, y), "test_by_class"}``."""
    train_split = "train" if "train" in parts else next(iter(parts))
    test_split = "test" if "test" in parts and train_split != "test" else None
    pool_x, pool_y = parts[train_split]
    need = n_max + n_val + (n_test if test_split is None else 0)
    by_class = []
    for c in range(classes):
        idx = torch.nonzero(pool_y == c).flatten()
        if len(idx) < need:
            raise ValueError(f"{what}: class {c} of {ds.label} ({train_split} split) has {len(idx)} images, need "
                             f"n_max + n_val{' + n_test' if test_split is None else ''} = {need}; lower n_max/n_val/n_test")
        by_class.append(idx[torch.randperm(len(idx), generator=gen)])
    val_idx = torch.cat([idx[n_max:n_max + n_val] for idx in by_class])
    if test_split is None:
        test_x, test_y = pool_x, pool_y
        test_by_class = [idx[n_max + n_val:n_max + n_val + n_test] for idx in by_class]
    else:
        test_x, test_y = parts[test_split]
        test_by_class = []
        for c in range(classes):
            idx = torch.nonzero(test_y == c).flatten()
            if len(idx) < n_test:
                raise ValueError(f"{what}: class {c} of the test split has {len(idx)} images, need n_test = {n_test}")
            test_by_class.append(idx[torch.randperm(len(idx), generator=gen)][:n_test])
    return {"pool": (pool_x, pool_y), "by_class": by_class, "val_idx": val_idx, "test": (test_x, test_y),
            "test_by_class": test_by_class}


def _train_batches(phase_pools: list[torch.Tensor], phase_of, batch_size: int, seed: int):
    """Round t's training batch: the next ``batch_size`` images of the phase's shuffle (fixed by the seed)."""
    order_gen = torch.Generator().manual_seed(int(seed) + 7919)
    cursor: dict[int, tuple[torch.Tensor, int]] = {}
    batches: dict[int, torch.Tensor] = {}

    def train_batch(t: int) -> torch.Tensor:
        for s in range(len(batches) + 1, t + 1):  # rounds are drawn in order; memoised
            k = phase_of(s)
            order, pos = cursor.get(k, (phase_pools[k][torch.randperm(len(phase_pools[k]), generator=order_gen)], 0))
            take = []
            while sum(len(p) for p in take) < batch_size:
                if pos >= len(order):
                    order, pos = phase_pools[k][torch.randperm(len(phase_pools[k]), generator=order_gen)], 0
                n = min(batch_size - sum(len(p) for p in take), len(order) - pos)
                take.append(order[pos:pos + n])
                pos += n
            cursor[k] = (order, pos)
            batches[s] = torch.cat(take)
        return batches[t]

    return train_batch


def _round_maker(net, X, Y, u, classes, train_batch, val_idx, batch_size, batch_val, weight_decay, phase_of,
                 x0, y0, last: dict):
    """``make_round(t, generator)``: round t's problem (parametric CE on its training batch, balanced CE on a
    validation batch drawn from ``generator``); ``last["train"]`` keeps the batch for BatchNorm statistics."""

    def make_round(t: int, generator: torch.Generator) -> BilevelProblem:
        tr = train_batch(t)
        va = val_idx[torch.randperm(len(val_idx), generator=generator)[:batch_val]]
        last["train"] = X[tr]

        def g(x, y, batch=None):
            idx = tr if batch is None else tr[batch]
            scores = net(y, X[idx])
            adjusted = x[classes:] * scores + x[:classes]
            return F.cross_entropy(adjusted, Y[idx]) + 0.5 * weight_decay * torch.sum(y * y)

        def f(x, y, batch=None):
            idx = va if batch is None else va[batch]
            losses = F.cross_entropy(net(y, X[idx]), Y[idx], reduction="none")
            return torch.mean(u[Y[idx]] * losses)

        return BilevelProblem(f=f, g=g, x0=x0, y0=y0, n_samples={"f": batch_val, "g": batch_size},
                              name=f"online_loss_tuning[t={t}]", info={"t": t, "phase": phase_of(t) + 1})

    return make_round


def _metrics(net, TX, TY, classes, test_all, test_phase, phase_of, last: dict) -> dict:
    """``balanced_accuracy``, ``test_accuracy`` and ``phase`` (see the module docstring)."""

    def predictions(idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return net(y, TX[idx], stats_from=last.get("train")).argmax(1)

    def balanced_accuracy(t, x, y):
        right = predictions(test_all, y) == TY[test_all]
        return float(torch.stack([right[TY[test_all] == c].to(torch.float64).mean() for c in range(classes)]).mean())

    def test_accuracy(t, x, y):
        idx = test_phase[phase_of(t)]
        return float((predictions(idx, y) == TY[idx]).to(torch.float64).mean())

    return {"balanced_accuracy": balanced_accuracy, "test_accuracy": test_accuracy,
            "phase": lambda t, x, y: phase_of(t) + 1}


@register("online_loss_tuning", limits={
    "dataset": "string", "splits": names_or_none, "seed": "counts",
    "phase_ratios": sequence("(0, 1]", "must be a non-empty list of numbers in (0, 1]"),
    "batch_norm": "boolean", "weight_decay": "nonnegative",
    **dict.fromkeys(("rounds_per_phase", "batch_size", "batch_val", "n_max", "n_val", "n_test", "channels", "layers"),
                    "at_least_one")})
def make_online_loss_tuning(dataset: str = "mnist", splits: list[str] | None = ("test",),
                            phase_ratios: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0), rounds_per_phase: int = 100,
                            batch_size: int = 64, batch_val: int = 64, n_max: int = 4000, n_val: int = 1000,
                            n_test: int = 100, channels: int = 64, layers: int = 4, batch_norm: bool = True,
                            weight_decay: float = 1e-4, seed: int = 0, dtype: torch.dtype = torch.float32,
                            device: str | torch.device = "cpu") -> BilevelStream:
    """The four-phase imbalanced stream above (defaults: the paper's scale)."""
    what = "online_loss_tuning"
    parts, ds = _images(dataset, list(splits) if splits is not None else None)
    classes = 10
    split = _split_images(what, parts, ds, classes, n_max, n_val, n_test, torch.Generator().manual_seed(int(seed)))
    by_class, val_idx, test_by_class = split["by_class"], split["val_idx"], split["test_by_class"]

    def normalise(a: torch.Tensor) -> torch.Tensor:
        return ((a - MEAN) / STD).to(dtype=dtype, device=device)

    X, Y = normalise(split["pool"][0]), split["pool"][1].to(device)
    TX, TY = normalise(split["test"][0]), split["test"][1].to(device)
    counts = [[math.ceil(n_max * float(mu) ** i) for i in range(classes)] for mu in phase_ratios]
    phase_pools = [torch.cat([by_class[i][:n] for i, n in enumerate(c)]) for c in counts]
    test_all = torch.cat(test_by_class)
    test_phase = [torch.cat([test_by_class[i][:max(1, math.ceil(n_test * float(mu) ** i))] for i in range(classes)])
                  for mu in phase_ratios]
    val_share = torch.bincount(Y[val_idx], minlength=classes).to(dtype) / len(val_idx)
    u = (1.0 / (classes * val_share)).to(device)
    net = ConvNet(channels=channels, layers=layers, classes=classes, batch_norm=batch_norm)

    def phase_of(t: int) -> int:
        return min((t - 1) // int(rounds_per_phase), len(phase_ratios) - 1)

    x0 = torch.cat([torch.zeros(classes, dtype=dtype), torch.ones(classes, dtype=dtype)]).to(device)
    y0 = net.init(torch.Generator().manual_seed(int(seed) + 104729), dtype=dtype, device=device)
    last: dict = {}
    make_round = _round_maker(net, X, Y, u, classes, _train_batches(phase_pools, phase_of, batch_size, seed), val_idx,
                              batch_size, batch_val, weight_decay, phase_of, x0, y0, last)
    return BilevelStream(
        make_round=make_round, x0=x0, y0=y0, name=f"online_loss_tuning[{ds.label}]",
        info={"dataset": ds.name, "stand_in_for": ds.stand_in_for, "dataset_label": ds.label,
              "phase_counts": counts, "network": net, "parameters": net.size, "rounds": len(phase_ratios) * rounds_per_phase},
        metrics=_metrics(net, TX, TY, classes, test_all, test_phase, phase_of, last))
