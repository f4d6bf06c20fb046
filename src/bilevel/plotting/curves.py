"""Figure kind "metric panels": per panel, one aggregated curve per method with its spread over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, NullFormatter

from ..files import atomic_path
from .panels import Panel
from .style import apply_style, figure_styles


def metric_panels(agg: pd.DataFrame, panels: list[Panel] | list[list[Panel]], title: str,
                  methods: list[str] | None = None, note: str | None = None):
    """Draw the panels (a list = one row, a list of lists = a grid); the line is the median over seeds,
    the band spans min to max.

    A method that diverged in any run is labelled "(diverged)" and drawn dashed; the y-range is set
    by the runs that did not diverge.
    """
    apply_style()
    methods = methods or sorted(agg["method"].unique())
    grid = panels if panels and isinstance(panels[0], list | tuple) else [panels]
    ncols = max(len(row) for row in grid)
    fig, axes = plt.subplots(len(grid), ncols, figsize=(4.3 * ncols, 3.4 * len(grid) + 0.3), squeeze=False)
    diverged = {m for m in methods if (agg.loc[agg["method"] == m, "status"] == "diverged").any()}
    styles = figure_styles(methods)
    placed = [(axes[i][j], panel) for i, row in enumerate(grid) for j, panel in enumerate(row)]
    for i, row in enumerate(grid):
        for j in range(len(row), ncols):
            axes[i][j].set_visible(False)
    for ax, panel in placed:
        finite_ranges = []
        for label in methods:
            c = agg[(agg["method"] == label) & (agg["phase"] == panel.phase) & (agg["metric"] == panel.metric)]
            c = c.sort_values("step")  # draw in budget / iteration order (time need not be monotone)
            c = c[np.isfinite(c[panel.center]) & np.isfinite(c[panel.x])]
            if panel.logx:
                c = c[c[panel.x] > 0]
            if panel.logy:  # an exact zero (e.g. a value gap reached to machine precision) has no log
                c = c[c[panel.center] > 0]
            if c.empty:
                continue
            div = label in diverged and (c["status"] == "diverged").any()
            if not div:
                low = c["min"][c["min"] > 0].min() if panel.logy else c["min"].min()
                finite_ranges.append((low, c["max"].max()))
            color, marker = styles[label]
            ax.plot(c[panel.x], c[panel.center], color=color, marker=marker,
                    markersize=3.5, linewidth=1.4, linestyle="--" if div else "-",
                    label=f"{label} (diverged)" if label in diverged else label)
            if not div:
                ax.fill_between(c[panel.x], c["min"], c["max"], color=color, alpha=0.2, linewidth=0)
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log range overlap
        if panel.logy:
            ax.set_yscale("log")
        if not panel.logx:
            ax.xaxis.set_major_locator(MaxNLocator(5))
        if finite_ranges:  # a diverged curve leaves the axes instead of crushing the others
            low, high = min(r[0] for r in finite_ranges), max(r[1] for r in finite_ranges)
            if panel.logy and low > 0:
                ax.set_ylim(low / 3, high * 3)
            elif not panel.logy:
                pad = 0.05 * (high - low or 1.0)
                ax.set_ylim(low - pad, high + pad)
    handles, labels = [], []
    for ax, _ in placed:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    height = fig.get_figheight()  # title, note and legend keep a fixed height in inches whatever the grid
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=12, y=1 - 0.04 / height)
    if note:
        fig.text(0.5, 1 - 0.31 / height, note, ha="center", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1 - (0.45 if note else 0.22) / height))
    return fig


def save_figure(fig, outputs: list[str]) -> None:
    """Save ``fig`` to every path (format from the suffix), atomically; close it."""
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=Path(out).suffix.lstrip("."), bbox_inches="tight")
    plt.close(fig)
