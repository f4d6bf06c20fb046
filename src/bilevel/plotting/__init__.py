"""Plotting: one style, one function per figure kind; reads only aggregated results."""

from .curves import metric_panels, save_figure
from .style import apply_style, method_color, method_marker

__all__ = ["apply_style", "method_color", "method_marker", "metric_panels", "save_figure"]
