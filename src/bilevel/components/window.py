"""Window averaging of online estimates (OAGD, SOBOW; ``specs/sogd.md`` §2.1, §6)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def window_average(estimates: Sequence[torch.Tensor], decay: float) -> torch.Tensor:
    """``Σ_i ν^i e_i / W`` with ``W = Σ_i ν^i``, estimates ordered newest first (i = 0 is the current round)."""
    if not estimates:
        raise ValueError("window_average: no estimates")
    weights = [decay**i for i in range(len(estimates))]
    total = sum(weights)
    return sum(w / total * e for w, e in zip(weights, estimates, strict=True))
