"""Plotting: one style, one function per figure kind; reads only aggregated results.

A layer below :mod:`bilevel.experiments` (which calls it): it imports only :mod:`bilevel.files`, never the
experiments, methods or problems.
"""

from .panels import Panel

__all__ = ["Panel"]  # drawing functions: bilevel.plotting.curves, bilevel.plotting.style (import matplotlib)
