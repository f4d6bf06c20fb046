"""Figure kind "grid heatmaps": one annotated heatmap per two-factor sweep (e.g. the SOGD paper's App. E)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from .style import apply_style


@dataclass(frozen=True)
class Heatmap:
    """``values[i][j]`` (NaN: no finite value, drawn grey with ``missing``) at row label i, column label j;
    ``std`` (same shape, optional) is printed under each value."""

    title: str
    row_title: str
    column_title: str
    rows: list[str]
    columns: list[str]
    values: np.ndarray
    std: np.ndarray | None = None
    missing: str = "diverged"


def grid_heatmaps(maps: list[Heatmap], title: str, colorbar: str, note: str | None = None,
                  cmap: str = "viridis"):
    """Draw the heatmaps side by side on one shared colour scale."""
    apply_style()
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps) + 1.2, 4.6), squeeze=False)
    finite = np.concatenate([m.values[np.isfinite(m.values)] for m in maps] or [np.zeros(0)])
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    image = None
    for ax, m in zip(axes[0], maps, strict=True):
        shown = np.ma.masked_invalid(m.values)
        palette = plt.get_cmap(cmap).copy()
        palette.set_bad("0.85")
        image = ax.imshow(shown, cmap=palette, vmin=low, vmax=high if high > low else low + 1, aspect="auto")
        for i in range(m.values.shape[0]):
            for j in range(m.values.shape[1]):
                v = m.values[i, j]
                if np.isfinite(v):
                    text = f"{v:.2f}" + ("" if m.std is None or not np.isfinite(m.std[i, j]) else f"\n±{m.std[i, j]:.2f}")
                    shade = (v - low) / (high - low) if high > low else 0.0
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if shade < 0.55 else "black")
                else:
                    ax.text(j, i, m.missing, ha="center", va="center", fontsize=7, color="0.3")
        ax.set_xticks(range(len(m.columns)), m.columns)
        ax.set_yticks(range(len(m.rows)), m.rows)
        ax.set_xlabel(m.column_title)
        ax.set_ylabel(m.row_title)
        ax.set_title(m.title)
        ax.grid(False)
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.14, top=0.8, wspace=0.42)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=colorbar, shrink=0.9, pad=0.02)
    fig.suptitle(title, fontsize=12, y=0.98)
    if note:
        fig.text(0.5, 0.9, note, ha="center", fontsize=8, color="0.35")
    return fig
