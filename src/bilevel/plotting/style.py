"""The house style: a whitegrid theme, mathtext (no LaTeX needed), and a fixed colour and marker per method.

Every registered method (``bilevel.methods.available()``) and the labels the configurations give its
variants (``aid-cg``, ``aid-neumann``) have a fixed palette entry, so every figure of the artifact draws
a method the same way. Any other label -- a new method, a variant such as ``m10`` -- gets, in the order
of the figure's labels, a palette entry no other curve of that figure uses, so a new method is styled
distinctly and deterministically without editing this module. (This module sits below the experiments
and the methods: the test suite checks that every key of ``_FIXED`` is a registered name or a
configured label.)
"""

from __future__ import annotations

import hashlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402

_PALETTE = list(matplotlib.colormaps["tab20"].colors)

# The theme of seaborn 0.13's ``set_theme(context="paper", style="whitegrid", font_scale=1.1)``, written
# out: importing seaborn costs ~3 s (it imports scipy.stats) in every plot and notebook job, for these
# values only.
_FONT = 10.56  # 9.6 (paper context) x 1.1
_THEME = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.grid": True, "axes.labelcolor": ".15",
    "axes.linewidth": 1.0, "grid.color": ".8", "text.color": ".15", "patch.edgecolor": "w",
    "patch.force_edgecolor": True, "patch.linewidth": 0.8, "lines.linewidth": 1.2, "lines.markersize": 4.8,
    "lines.solid_capstyle": "round", "font.size": _FONT, "axes.titlesize": _FONT, "axes.labelsize": _FONT,
    "legend.fontsize": 9.68, "legend.title_fontsize": _FONT, "xtick.labelsize": 9.68, "ytick.labelsize": 9.68,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "xtick.bottom": False, "ytick.left": False, "xtick.color": ".15", "ytick.color": ".15",
    "xtick.major.size": 4.8, "ytick.major.size": 4.8, "xtick.major.width": 1.0, "ytick.major.width": 1.0,
    "xtick.minor.size": 3.2, "ytick.minor.size": 3.2, "xtick.minor.width": 0.8, "ytick.minor.width": 0.8,
    "axes.prop_cycle": cycler("color", ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
                                        "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]),  # seaborn "deep"
}
_FIXED = {
    "itd": 0, "aid": 2, "aid-cg": 2, "aid-neumann": 4, "f2ba": 8, "pzobo": 10,
    "soba": 12, "zmdsba": 14, "zoba": 6, "hf-zoba": 16, "fsba": 18, "ifsba": 1, "lfsba": 3,
    "lmcn": 5, "mcn": 7, "gda": 9, "sogd": 11, "zo-sogd": 13, "ogd": 15, "oagd": 17, "sobow": 19,
    "zo-gd": 1, "zo-adam": 3, "zo-signsgd": 5, "zo-conservsgd": 7,
}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]


def _index(label: str) -> int:
    if label in _FIXED:
        return _FIXED[label]
    return int(hashlib.sha256(label.encode()).hexdigest(), 16) % len(_PALETTE)


def figure_styles(labels: list[str]) -> dict[str, tuple]:
    """``label -> (colour, marker)`` for one figure: registry labels keep their fixed style; other labels
    (variants such as ``m10`` or ``lmcn-m5``) get, in order, the palette entries no other label of this
    figure uses, so two curves of one figure never look alike."""
    used = {_FIXED[lab] for lab in labels if lab in _FIXED}
    free = [i for i in range(len(_PALETTE)) if i not in used]
    out = {}
    for lab in labels:
        i = _FIXED[lab] if lab in _FIXED else (free.pop(0) if free else _index(lab))
        out[lab] = (_PALETTE[i], _MARKERS[i % len(_MARKERS)])
    return out


def method_color(label: str):
    """The fixed colour of a method label."""
    return _PALETTE[_index(label)]


def apply_style() -> None:
    """Apply the house theme (idempotent)."""
    plt.rcParams.update(_THEME)
    plt.rcParams.update({"text.usetex": False, "figure.dpi": 110, "savefig.dpi": 160, "legend.frameon": True,
                         "axes.titlesize": 11, "axes.labelsize": 10, "pdf.fonttype": 42})
