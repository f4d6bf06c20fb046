"""Small neural networks as pure functions of ONE flat parameter vector (the inner variable y of a bilevel
problem is a 1-D tensor, :mod:`bilevel.problems.base`).

:class:`ConvNet` is the 4-layer CNN of the OAGD/SOGD loss-tuning experiment (``specs/sogd.md`` §7.2,
``get_cnn_small`` of ``BojianHou/OAGD``): ``layers`` × [Conv 3×3 (padding 1, ``channels`` maps) → ReLU →
MaxPool 2 → BatchNorm], Flatten, Linear(→ classes); convolutions He-normal initialised (seeded), the
linear layer initialised to zero. BatchNorm normalises with the statistics of a reference batch: the
batch itself (training mode) or, for evaluation, a given ``stats_from`` batch (the reference code keeps
running statistics with momentum 1, i.e. the statistics of the last training batch). Written with plain
torch ops, so gradients, Hessian-vector products and vmap all apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ConvNet:
    """The CNN above on ``side × side`` single-channel images; ``batch_norm=False`` drops the BN layers."""

    channels: int = 64
    layers: int = 4
    classes: int = 10
    side: int = 28
    in_channels: int = 1
    batch_norm: bool = True
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if min(self.channels, self.layers, self.classes, self.side, self.in_channels) < 1:
            raise ValueError(f"ConvNet: channels, layers, classes, side and in_channels must be >= 1, got {self}")
        if self.side // 2**self.layers < 1:
            raise ValueError(f"ConvNet: {self.layers} max-pool layers leave nothing of a {self.side}-pixel image")

    @property
    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the parameters, in the order of the flat vector."""
        out, c_in = [], self.in_channels
        for i in range(self.layers):
            out += [(f"conv{i}.w", (self.channels, c_in, 3, 3)), (f"conv{i}.b", (self.channels,))]
            if self.batch_norm:
                out += [(f"bn{i}.w", (self.channels,)), (f"bn{i}.b", (self.channels,))]
            c_in = self.channels
        final = self.side
        for _ in range(self.layers):
            final //= 2
        out += [("fc.w", (self.classes, self.channels * final * final)), ("fc.b", (self.classes,))]
        return out

    @property
    def size(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(s) for _, s in self.shapes)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of the flat vector, one per parameter."""
        if theta.shape != (self.size,):
            raise ValueError(f"ConvNet: expected a flat parameter vector of length {self.size}, got {tuple(theta.shape)}")
        out, start = {}, 0
        for name, shape in self.shapes:
            n = math.prod(shape)
            out[name] = theta[start:start + n].reshape(shape)
            start += n
        return out

    def init(self, generator: torch.Generator, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """He-normal convolutions (fan-out, as ``kaiming_normal_(mode="fan_out")``), zero biases, BN weights 1,
        zero linear layer."""
        parts = []
        for name, shape in self.shapes:
            if name.startswith("conv") and name.endswith(".w"):
                std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
                parts.append(torch.randn(shape, generator=generator, dtype=dtype).flatten() * std)
            elif name.startswith("bn") and name.endswith(".w"):
                parts.append(torch.ones(math.prod(shape), dtype=dtype))
            else:
                parts.append(torch.zeros(math.prod(shape), dtype=dtype))
        return torch.cat(parts).to(device)

    def _norm(self, h: torch.Tensor, ref: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        var = ref.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + self.eps) * w[None, :, None, None] + b[None, :, None, None]

    def __call__(self, theta: torch.Tensor, images: torch.Tensor, stats_from: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores (N, classes) of ``images`` (N, side²) or (N, C, side, side)."""
        p = self.unflatten(theta)
        shape = (-1, self.in_channels, self.side, self.side)
        h = images.reshape(shape)
        ref = None if stats_from is None else stats_from.reshape(shape)
        for i in range(self.layers):
            def block(a, i=i):
                return F.max_pool2d(torch.relu(F.conv2d(a, p[f"conv{i}.w"], p[f"conv{i}.b"], padding=1)), 2)

            h = block(h)
            ref = None if ref is None else block(ref)
            if self.batch_norm:
                stats = h if ref is None else ref
                if ref is not None:
                    ref = self._norm(ref, ref, p[f"bn{i}.w"], p[f"bn{i}.b"])
                h = self._norm(h, stats, p[f"bn{i}.w"], p[f"bn{i}.b"])
        return h.flatten(1) @ p["fc.w"].T + p["fc.b"]
