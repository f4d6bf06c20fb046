"""Closed forms by Newton's method and the implicit function theorem, for a small inner dimension.

For a lower level ``g(x, ·)`` that is smooth and strongly convex with a few hundred variables at most:

- ``y*(x)``: Newton's method with the full Hessian ``∇²_yy g`` (autograd), to ``tol`` on ‖∇_y g‖;
- ``∇Ψ(x) = ∇_x f − ∇²_xy g · v``, ``v = [∇²_yy g]⁻¹ ∇_y f`` at ``(x, y*(x))`` — the mixed product is
  the x-gradient of ``⟨∇_y g(x, y), v⟩`` with v held fixed (one double-backward pass).

Used only for metrics (a method never sees them). :class:`NewtonClosedForm` remembers the last
``(x, y*(x))`` so that the several metrics of one evaluation share one Newton solve.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.functional import hessian

from .base import ClosedForm


@torch.enable_grad()
def _grads(fn: Callable, x: torch.Tensor, y: torch.Tensor, create_graph: bool = False):
    """(∇_x fn, ∇_y fn) by reverse mode (plain autograd: no torch.func start-up cost)."""
    if not (x.requires_grad and y.requires_grad):
        x, y = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    gx, gy = torch.autograd.grad(fn(x, y), (x, y), create_graph=create_graph, allow_unused=True)
    return (torch.zeros_like(x) if gx is None else gx), (torch.zeros_like(y) if gy is None else gy)


def _hessian_yy(fn: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        return hessian(lambda yy: fn(x.detach(), yy), y.detach())


class NewtonClosedForm:
    """``y*``, ``∇Ψ`` and ``Ψ`` of ``min_x f(x, y*(x))``, ``y*(x) = argmin_y g(x, y)`` (functions of (x, y))."""

    def __init__(self, f: Callable, g: Callable, y0: torch.Tensor, tol: float = 1e-10, max_steps: int = 100):
        self.f, self.g, self.y0 = f, g, y0.detach().clone()
        self.tol, self.max_steps = float(tol), int(max_steps)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def _newton(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for _ in range(self.max_steps):
            gy = _grads(self.g, x, y)[1]
            if float(torch.linalg.vector_norm(gy)) <= self.tol:
                break
            step = torch.linalg.solve(_hessian_yy(self.g, x, y), gy)
            t = 1.0  # backtracking on g: the pure Newton step may overshoot far from the solution
            g0 = self.g(x, y)
            while t > 1e-8 and not self.g(x, y - t * step) <= g0 - 0.25 * t * torch.dot(gy, step):
                t *= 0.5
            y = y - t * step
        return y

    @torch.no_grad()
    def y_star(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        if self._last is not None and self._last[0].shape == x.shape and torch.equal(self._last[0], x):
            return self._last[1]
        start = self._last[1] if self._last is not None else self.y0
        y = self._newton(x, start.clone())
        self._last = (x.clone(), y)
        return y

    @torch.no_grad()
    def hypergradient(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        y = self.y_star(x)
        fx, fy = _grads(self.f, x, y)
        v = torch.linalg.solve(_hessian_yy(self.g, x, y), fy)
        with torch.enable_grad():  # ∇²_xy g · v = ∇_x ⟨∇_y g(x, y), v⟩
            xx = x.detach().requires_grad_(True)
            gy = _grads(self.g, xx, y.detach().requires_grad_(True), create_graph=True)[1]
            mixed = torch.autograd.grad(torch.dot(gy, v), xx)[0]
        return fx - mixed

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x.detach(), self.y_star(x))

    def closed_form(self) -> ClosedForm:
        return ClosedForm(y_star=self.y_star, hypergradient=self.hypergradient, value=self.value)
