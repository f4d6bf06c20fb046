"""Few-shot meta-learning as a bilevel problem (``specs/pzobo.md`` §5.4, ``specs/fsba.md`` §9.5, F-6).

Upper variable ``x``: the backbone (:class:`~bilevel.networks.Conv4` or :class:`~bilevel.networks.ResNet12`),
one flat vector. Lower variable ``y``: one linear head ``W_b ∈ R^{N×(F+1)}`` (weights and bias) per task
of the meta-batch, stacked. With ``φ = backbone(x)`` and the meta-batch's B tasks::

    g(x, y) = Σ_b [ CE(φ(S_b) W_bᵀ, labels) + ½ reg ‖W_b‖² ]     (support sets; sum: each head sees its own task)
    f(x, y) = (1/B) Σ_b CE(φ(Q_b) W_bᵀ, labels)                 (query sets; the mean of the task losses)

so ``∇_{W_b} g`` is task b's own inner gradient and ∇Ψ is the meta-batch mean of the task hypergradients.

Episodes: :class:`EpisodeSampler` draws N-way K-shot tasks with ``n_query`` query images per class from
one class split; episode ``i`` is a pure function of ``(seed, i)`` (reproducible, and a resumed run sees
the same tasks). The meta-batch of outer step k is episodes ``k·B .. k·B + B − 1`` of the training
split (modulo ``train_tasks`` when a finite task pool is set, as PZOBO's 20,000); :func:`bilevel.run`
installs it through :attr:`BilevelProblem.resample` before each step, outside the timed region.

Backbone features of the current meta-batch are memoised for a backbone that is not being
differentiated (the inner loops of every method then cost only the heads, as in the reference codes,
which compute the features once per task); anything differentiated through ``x`` recomputes them.

Metrics (outside the timed region). Of the backbone x, judged at heads fitted by one fixed procedure,
the same for every method (:func:`fit_heads`: from zero, ``eval_steps`` Nesterov steps of size 1/L on the
support set's ``CE + ½ reg ‖W‖²``, L = ½ mean‖φ̃‖² + reg bounds the head Hessian): ``test_accuracy`` /
``test_loss`` = mean over ``eval_tasks`` fixed held-out tasks of the query accuracy / loss. Diagnostic
of the method's own heads y (for F2BA and the FSBA family partly fit on the query sets, as they minimise
f + λg): ``iterate_meta_train_accuracy``, the query accuracy of those heads on the current meta-batch.
Chance is 1/N.

Class splits: datasets with ``train`` / ``val`` / ``test`` splits (FC100, miniImageNet) use them;
otherwise (Omniglot, its stand-ins) all classes are pooled and split by ``class_fractions`` with
``split_seed``. Images: ink-on-white sets (Omniglot) are inverted, all are resized to ``side`` (area
interpolation), converted to ``in_channels`` and standardised per channel with the training split's
mean and std.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import data
from ..limits import sequence
from ..networks import Conv4, ResNet12
from .base import BilevelProblem
from .registry import register

SPLITS = ("train", "val", "test")


@dataclass
class Episode:
    """One N-way K-shot task: support (N·K images, labels 0..N−1 in blocks of K) and query (N·n_query)."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor  # the split's class ids behind labels 0..N-1


class EpisodeSampler:
    """N-way K-shot episodes over the classes of one split.

    ``images`` (M, C, H, W) (any dtype), ``labels`` (M,) class ids; ``prepare`` maps a selection of images to
    model inputs. Episode ``i`` draws N distinct classes and K + n_query distinct images of each from a
    generator seeded with ``(seed, i)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int, n_query: int,
                 seed: int = 0, prepare=None, name: str = "split"):
        if min(n_way, k_shot, n_query) < 1:
            raise ValueError(f"episodes need n_way, k_shot and n_query >= 1, got {n_way}, {k_shot}, {n_query}")
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query
        self.seed, self.name = int(seed), name
        self.prepare = prepare or (lambda a: a)
        self.class_ids = torch.unique(labels)
        self.members = [torch.nonzero(labels == c).flatten() for c in self.class_ids]
        if len(self.class_ids) < n_way:
            raise ValueError(f"{name}: {len(self.class_ids)} classes, fewer than n_way = {n_way}")
        short = min(len(m) for m in self.members)
        if short < k_shot + n_query:
            raise ValueError(f"{name}: a class has {short} images, fewer than k_shot + n_query = {k_shot + n_query}")

    def __len__(self) -> int:
        return len(self.class_ids)

    def indices(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image indices ``(n_way, k_shot + n_query)`` of episode ``index`` and the chosen class positions."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        chosen = torch.randperm(len(self.members), generator=gen)[: self.n_way]
        rows = []
        for c in chosen.tolist():
            pool = self.members[c]
            rows.append(pool[torch.randperm(len(pool), generator=gen)[: self.k_shot + self.n_query]])
        return torch.stack(rows), chosen

    def episode(self, index: int) -> Episode:
        rows, chosen = self.indices(index)
        n, k, q = self.n_way, self.k_shot, self.n_query
        labels = torch.arange(n)
        return Episode(self.prepare(self.images[rows[:, :k].reshape(-1)]), labels.repeat_interleave(k),
                       self.prepare(self.images[rows[:, k:].reshape(-1)]), labels.repeat_interleave(q),
                       self.class_ids[chosen])

    def batch(self, indices) -> Episode:
        """Episodes stacked along the first axis: support (B·N·K, ...) and labels (B, N·K); same for query."""
        eps = [self.episode(i) for i in indices]
        return Episode(torch.cat([e.support_x for e in eps]), torch.stack([e.support_y for e in eps]),
                       torch.cat([e.query_x for e in eps]), torch.stack([e.query_y for e in eps]),
                       torch.stack([e.classes for e in eps]))


def _flat_images(arrays: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (M, C, H, W), labels (M,)) from a split stored flat or grouped (classes, drawings, H, W)."""
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 4 and len(y) == x.shape[0] and x.shape[1] in (1, 3):
        return x, y.long()
    if x.ndim == 4 and len(y) == x.shape[0]:  # grouped Omniglot layout: (characters, drawings, H, W)
        return x.reshape(-1, 1, *x.shape[2:]), y.long().repeat_interleave(x.shape[1])
    raise ValueError(f"few-shot images must be (N, C, H, W) or (classes, drawings, H, W), got {tuple(x.shape)}")


def class_splits(ds, class_fractions=(0.6, 0.2, 0.2), split_seed: int = 0) -> dict[str, tuple]:
    """``{split: (images, labels)}`` for train/val/test with disjoint classes (see the module docstring)."""
    if all(s in ds.splits for s in SPLITS):
        return {s: _flat_images(ds[s]) for s in SPLITS}
    parts, offset = [], 0
    for name in ds.splits:  # pool every split, class ids made distinct across splits
        x, y = _flat_images(ds[name])
        parts.append((x, y + offset))
        offset += int(y.max()) + 1
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    classes = torch.unique(y)
    order = classes[torch.randperm(len(classes), generator=torch.Generator().manual_seed(int(split_seed)))]
    total = float(sum(class_fractions))
    n_train = round(len(classes) * class_fractions[0] / total)
    n_val = round(len(classes) * class_fractions[1] / total)
    groups = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    out = {}
    for split, members in groups.items():
        mask = torch.isin(y, members)
        out[split] = (x[mask], y[mask])
    return out


class _Preprocess:
    """uint8/bool images -> standardised float inputs of the backbone (see the module docstring)."""

    def __init__(self, train_images: torch.Tensor, side: int, in_channels: int, invert: bool, dtype, device):
        self.side, self.in_channels, self.invert, self.dtype, self.device = side, in_channels, invert, dtype, device
        self.mean = torch.zeros(in_channels, dtype=dtype)
        self.std = torch.ones(in_channels, dtype=dtype)
        sample = train_images[torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))[:2000]]
        ref = self.scaled(sample)
        self.mean = ref.mean(dim=(0, 2, 3))
        self.std = ref.std(dim=(0, 2, 3)).clamp_min(1e-6)

    def scaled(self, images: torch.Tensor) -> torch.Tensor:
        a = images.to(torch.float32)
        a = a / 255.0 if images.dtype == torch.uint8 and not self.invert else a
        if self.invert:  # Omniglot: 1 = background, 0 = stroke -> ink 1
            a = 1.0 - a
        if a.shape[-1] != self.side or a.shape[-2] != self.side:
            a = F.interpolate(a, size=(self.side, self.side), mode="area")
        if a.shape[1] != self.in_channels:
            a = a.mean(dim=1, keepdim=True).expand(-1, self.in_channels, -1, -1) if a.shape[1] == 3 \
                else a.expand(-1, self.in_channels, -1, -1)
        return a.to(self.dtype)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        a = (self.scaled(images) - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        return a.contiguous().to(self.device)


def _is_plain(t: torch.Tensor) -> bool:
    """False for torch.func's wrapped tensors (inside vmap / grad), whose storage cannot be keyed."""
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)


def _logits(features: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """Class scores (B, n, N) of heads (B, N, F+1) (weights, then the bias) on features (B, n, F)."""
    return torch.einsum("bnf,bcf->bnc", features, heads[..., :-1]) + heads[..., -1][:, None, :]


def _head_loss(features: torch.Tensor, heads: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-task mean cross-entropy (B,) of heads (B, N, F+1) on features (B, n, F), labels (B, n)."""
    logits = _logits(features, heads)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none") \
        .reshape(labels.shape).mean(dim=1)


def fit_heads(features: torch.Tensor, labels: torch.Tensor, n_way: int, reg: float, steps: int) -> torch.Tensor:
    """Heads (B, N, F+1) minimising each task's ``CE + ½ reg ‖W‖²`` on (B, n, F) features: ``steps``
    Nesterov steps of size 1/L from zero, L = ½ mean‖(φ, 1)‖² + reg (a bound on the Hessian)."""
    b, _, f = features.shape
    lipschitz = 0.5 * (features.pow(2).sum(-1).mean() + 1.0) + reg
    heads = torch.zeros(b, n_way, f + 1, dtype=features.dtype, device=features.device)
    previous = heads
    for t in range(steps):
        look = heads + (t / (t + 3)) * (heads - previous)
        look = look.detach().requires_grad_(True)
        loss = _head_loss(features, look, labels).sum() + 0.5 * reg * look.pow(2).sum()
        (grad,) = torch.autograd.grad(loss, look)
        previous, heads = heads, (look - grad / lipschitz).detach()
    return heads


#: the declared limits of :func:`make_few_shot`'s parameters (:mod:`bilevel.limits`)
LIMITS = {"dataset": "string", "backbone": ("conv4", "resnet12"), "n_way": "at_least_two",
          "channels": sequence("at_least_one", "must be four integers >= 1 (the ResNet-12 stage widths)", 4),
          **dict.fromkeys(("hidden", "side", "in_channels", "k_shot", "n_query", "meta_batch", "eval_tasks",
                           "eval_steps"), "at_least_one"),
          "reg": "nonnegative", "train_tasks": "at_least_one or None", "eval_split": SPLITS,
          "class_fractions": sequence("positive", "must be three positive numbers (train, val, test)", 3),
          "split_seed": "counts", "seed": "counts"}


class _MetaBatch:
    """The meta-batch of the current outer step (:meth:`resample`) and the memoised backbone features of a
    backbone that is not being differentiated (see the module docstring)."""

    def __init__(self, net, sampler: EpisodeSampler, meta_batch: int, feat: int, train_tasks: int | None, device):
        self.net, self.sampler, self.meta_batch, self.feat = net, sampler, meta_batch, feat
        self.train_tasks, self.device = train_tasks, device
        self.current: dict = {"step": None}
        self.cache: OrderedDict = OrderedDict()

    def resample(self, step: int) -> None:
        """Install the meta-batch of outer step ``step``."""
        current = self.current
        if current["step"] == step:
            return
        first = step * self.meta_batch
        ids = [(first + i) % self.train_tasks if self.train_tasks else first + i for i in range(self.meta_batch)]
        ep = self.sampler.batch(ids)
        current.update(step=step, support=ep.support_x, support_y=ep.support_y.to(self.device),
                       query=ep.query_x, query_y=ep.query_y.to(self.device))
        self.cache.clear()

    def features(self, x: torch.Tensor, which: str) -> torch.Tensor:
        if self.current["step"] is None:
            self.resample(0)
        images, net, meta_batch, cache = self.current[which], self.net, self.meta_batch, self.cache
        if x.requires_grad or not _is_plain(x):
            return net(x, images, groups=meta_batch).reshape(meta_batch, -1, self.feat)
        key = (which, x.data_ptr(), x._version, x.device)
        if key not in cache:
            with torch.no_grad():
                cache[key] = (x, net(x, images, groups=meta_batch).reshape(meta_batch, -1, self.feat))
            while len(cache) > 8:
                cache.popitem(last=False)
        return cache[key][1]


def _evaluator(net, sampler: dict, feat: int, n_way: int, k_shot: int, n_query: int, reg: float, eval_tasks: int,
               eval_steps: int, eval_split: str, device):
    """``evaluation(x, split)``: mean query accuracy and loss over the fixed held-out tasks (heads fitted from zero)."""
    eval_episodes = {}

    def evaluation(x: torch.Tensor, split: str = eval_split) -> tuple[float, float]:
        if split not in eval_episodes:
            eval_episodes[split] = sampler[split].batch(range(eval_tasks))
        ep = eval_episodes[split]
        accs, losses = [], []
        for start in range(0, eval_tasks, 50):  # chunks of 50 tasks bound the memory
            stop = min(start + 50, eval_tasks)
            n_s, n_q = n_way * k_shot, n_way * n_query
            sx = ep.support_x[start * n_s:stop * n_s].to(device)
            qx = ep.query_x[start * n_q:stop * n_q].to(device)
            with torch.no_grad():
                fs = net(x, sx, groups=stop - start).reshape(stop - start, n_s, feat)
                fq = net(x, qx, groups=stop - start).reshape(stop - start, n_q, feat)
            with torch.enable_grad():
                w = fit_heads(fs, ep.support_y[start:stop].to(device), n_way, reg, eval_steps)
            qy = ep.query_y[start:stop].to(device)
            with torch.no_grad():
                accs.append((_logits(fq, w).argmax(-1) == qy).float().mean(dim=1))
                losses.append(_head_loss(fq, w, qy))
        return float(torch.cat(accs).mean()), float(torch.cat(losses).mean())

    return evaluation


def _metrics(evaluation, batch: _MetaBatch, heads) -> dict:
    """``test_accuracy`` / ``test_loss`` (one held-out evaluation per backbone, shared by both: the memo holds
    the backbone itself, as a storage address alone could be reused by the next iterate) and the diagnostic
    ``iterate_meta_train_accuracy`` (the method's heads y on the meta-batch's query sets)."""
    memo: dict = {}

    def test_metric(index: int):
        def metric(p, x, y):
            if memo.get("x") is not x or memo.get("version") != x._version:
                memo.update(x=x, version=x._version, value=evaluation(x))
            return memo["value"][index]
        return metric

    def iterate_accuracy(p, x, y):
        with torch.no_grad():
            logits = _logits(batch.features(x, "query"), heads(y))
            return float((logits.argmax(-1) == batch.current["query_y"]).float().mean())

    return {"test_accuracy": test_metric(0), "test_loss": test_metric(1), "iterate_meta_train_accuracy": iterate_accuracy}


@register("few_shot", limits=LIMITS)
def make_few_shot(dataset: str = "fc100", backbone: str = "conv4", hidden: int = 64,
                  channels: tuple[int, ...] = (64, 160, 320, 640), side: int = 32, in_channels: int = 3,
                  n_way: int = 5, k_shot: int = 5, n_query: int = 15, meta_batch: int = 16, reg: float = 0.5,
                  train_tasks: int | None = None, eval_tasks: int = 200, eval_split: str = "test",
                  eval_steps: int = 100, class_fractions=(0.6, 0.2, 0.2), split_seed: int = 0, seed: int = 0,
                  dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> BilevelProblem:
    """The few-shot problem above (defaults: FC100 5-way 5-shot, PZOBO's reg 0.5 and meta-batch 16)."""
    ds = data.load(dataset)
    parts = class_splits(ds, class_fractions, split_seed)
    invert = ds.name in ("omniglot", "omniglot-small")
    prepare = _Preprocess(parts["train"][0], side, in_channels, invert, dtype, device)
    samplers = {s: EpisodeSampler(*parts[s], n_way, k_shot, n_query, seed=seed if s == "train" else split_seed + 7,
                                  prepare=prepare, name=f"{ds.label} {s}") for s in SPLITS}
    net = Conv4(hidden, 4, in_channels, side) if backbone == "conv4" else ResNet12(tuple(channels), in_channels, side)
    feat = net.feature_dim
    gen = torch.Generator().manual_seed(int(seed))
    x0 = net.init(gen, dtype=dtype, device=device)
    y0 = torch.zeros(meta_batch * n_way * (feat + 1), dtype=dtype, device=device)
    batch = _MetaBatch(net, samplers["train"], meta_batch, feat, train_tasks, device)

    def heads(y: torch.Tensor) -> torch.Tensor:
        return y.reshape(meta_batch, n_way, feat + 1)

    def g(x, y):
        w = heads(y)
        return _head_loss(batch.features(x, "support"), w, batch.current["support_y"]).sum() + 0.5 * reg * (w * w).sum()

    def f(x, y):
        return _head_loss(batch.features(x, "query"), heads(y), batch.current["query_y"]).mean()

    evaluation = _evaluator(net, samplers, feat, n_way, k_shot, n_query, reg, eval_tasks, eval_steps, eval_split, device)
    requested = dataset
    info = {
        "dataset": ds.name, "dataset_label": ds.label if ds.name == requested else f"STAND-IN: {ds.name} for {requested}",
        "stand_in_for": requested if ds.name != requested else None, "backbone": backbone, "feature_dim": feat,
        "n_way": n_way, "k_shot": k_shot, "n_query": n_query, "meta_batch": meta_batch, "reg": reg,
        "chance": 1.0 / n_way, "classes": {s: len(samplers[s]) for s in SPLITS},
        "metrics": _metrics(evaluation, batch, heads),
        "network": net, "samplers": samplers, "evaluate": evaluation,
    }
    name = f"few_shot({ds.name}, {backbone}, {n_way}-way {k_shot}-shot)"
    return BilevelProblem(f=f, g=g, x0=x0, y0=y0, name=name, info=info, resample=batch.resample)
