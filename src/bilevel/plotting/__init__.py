"""Plotting: one style, one function per figure kind; reads only aggregated results."""

from .panels import Panel

__all__ = ["Panel"]  # drawing functions: bilevel.plotting.curves, bilevel.plotting.style (import matplotlib)
