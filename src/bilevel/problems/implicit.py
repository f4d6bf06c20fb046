"""The lower-level solution by Newton's method, and closed forms by the implicit function theorem.

For a lower level ``g(x, ·)`` that is smooth and strongly convex:

- ``y_c(x) = argmin_y g(x, y)`` (:class:`LowerSolver`), to ``tol`` on ‖∇_y g(x, y_c)‖, always started from
  the same point (``y0``, or the model ``y_c(x̄)`` at a fixed anchor x̄ such as the problem's x0, itself
  solved from ``y0``): a deterministic function of x, so two methods at the same x get the same model
  (the *common model* at which every metric of x is judged). Two solvers:

  * ``"newton"``: Newton's method with the full Hessian ``∇²_yy g`` (autograd), for a few hundred
    variables at most;
  * ``"newton-cg"``: matrix-free (truncated) Newton-CG (Nocedal & Wright 2006, Alg. 7.1): the Newton
    system ``∇²_yy g · p = −∇_y g`` solved by conjugate gradients with Hessian-vector products by double
    backward (one retained graph of ∇_y g per Newton step), stopped at ‖r‖ ≤ max(η‖∇_y g‖, tol/2) with
    the forcing term η = min(½, ‖∇_y g‖^½) (superlinear convergence); for thousands of variables.

  Both take the step with a backtracking (Armijo) line search on g, so they converge from any start.
- ``∇Ψ(x) = ∇_x f − ∇²_xy g · v``, ``v = [∇²_yy g]⁻¹ ∇_y f`` at ``(x, y*(x))`` — the mixed product is
  the x-gradient of ``⟨∇_y g(x, y), v⟩`` with v held fixed (one double-backward pass) (:class:`NewtonClosedForm`).

Used only for metrics (a method never sees them; :func:`bilevel.run` computes metrics outside the
timed region, uncounted). The solvers remember the last few ``(x, y_c(x))`` (for the identical x only),
so that the several metrics of one evaluation share one solve.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.autograd.functional import hessian

from .base import ClosedForm

SOLVERS = ("newton", "newton-cg")


@torch.enable_grad()
def _grads(fn: Callable, x: torch.Tensor, y: torch.Tensor, create_graph: bool = False):
    """(∇_x fn, ∇_y fn) by reverse mode (plain autograd: no torch.func start-up cost)."""
    if not (x.requires_grad and y.requires_grad):
        x, y = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    gx, gy = torch.autograd.grad(fn(x, y), (x, y), create_graph=create_graph, allow_unused=True)
    return (torch.zeros_like(x) if gx is None else gx), (torch.zeros_like(y) if gy is None else gy)


def _hessian_yy(fn: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇²_yy fn, its rows by one vectorised backward pass (3-4 times faster than a loop over them at 11-15
    variables)."""
    with torch.enable_grad():
        return hessian(lambda yy: fn(x.detach(), yy), y.detach(), vectorize=True)


def _line_search(g: Callable, x: torch.Tensor, y: torch.Tensor, step: torch.Tensor, slope: float) -> torch.Tensor:
    """``y + t·step`` with the largest t ∈ {1, ½, ¼, ...} (≥ 1e-10) satisfying Armijo's test on g with
    c = 1e-4 (``slope`` = ⟨∇_y g, step⟩ < 0), up to round-off of g's value (8 machine epsilons)."""
    g0 = float(g(x, y))
    slack = 8 * torch.finfo(y.dtype).eps * abs(g0)
    t = 1.0
    while t > 1e-10 and not float(g(x, y + t * step)) <= g0 + 1e-4 * t * slope + slack:
        t *= 0.5
    return y + t * step


def newton(g: Callable, x: torch.Tensor, y: torch.Tensor, tol: float, max_steps: int) -> tuple[torch.Tensor, dict]:
    """Newton's method with the full Hessian from ``y`` to ‖∇_y g(x, y)‖ ≤ ``tol``; returns (y, statistics)."""
    stats = {"newton_steps": 0, "hvp": 0, "grad_norm": math.nan}
    for _ in range(max_steps + 1):
        gy = _grads(g, x, y)[1]
        stats["grad_norm"] = float(torch.linalg.vector_norm(gy))
        if stats["grad_norm"] <= tol or stats["newton_steps"] == max_steps:
            break
        step = -torch.linalg.solve(_hessian_yy(g, x, y), gy)
        y = _line_search(g, x, y, step, float(torch.dot(gy, step)))
        stats["newton_steps"] += 1
    return y, stats


def newton_cg(g: Callable, x: torch.Tensor, y: torch.Tensor, tol: float, max_steps: int,
              cg_steps: int, max_hvp: int | None = None) -> tuple[torch.Tensor, dict]:
    """Matrix-free Newton-CG from ``y`` to ‖∇_y g(x, y)‖ ≤ ``tol`` (module docstring); at most ``cg_steps``
    Hessian-vector products per Newton step and ``max_hvp`` in all (None: no total cap; when it is spent, the
    current CG direction still takes its line search, then the solve stops with ``stats["capped"]``);
    returns (y, statistics)."""
    stats = {"newton_steps": 0, "hvp": 0, "grad_norm": math.nan, "capped": False}
    x = x.detach()
    for _ in range(max_steps + 1):
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            gy = torch.autograd.grad(g(x, yy), yy, create_graph=True)[0]
        b = -gy.detach()
        norm = float(torch.linalg.vector_norm(b))
        stats["grad_norm"] = norm
        if norm <= tol or stats["newton_steps"] == max_steps or stats["capped"]:
            break
        stop = max(min(0.5, math.sqrt(norm)) * norm, 0.5 * tol)
        p, r = torch.zeros_like(b), b.clone()
        d, rr = r.clone(), float(torch.dot(r, r))
        for _ in range(cg_steps):
            if max_hvp is not None and stats["hvp"] >= max_hvp:
                stats["capped"] = True
                p = p if float(torch.dot(p, p)) > 0 else b
                break
            hd = torch.autograd.grad(gy, yy, d, retain_graph=True)[0]
            stats["hvp"] += 1
            curvature = float(torch.dot(d, hd))
            if curvature <= 0:  # round-off only (g is strongly convex): keep what CG has, else descend
                p = p if float(torch.dot(p, p)) > 0 else b
                break
            alpha = rr / curvature
            p, r = p + alpha * d, r - alpha * hd
            rr, previous = float(torch.dot(r, r)), rr
            if math.sqrt(rr) <= stop:
                break
            d = r + (rr / previous) * d
        del gy, yy
        with torch.no_grad():
            y = _line_search(g, x, y.detach(), p, -float(torch.dot(b, p)))
        stats["newton_steps"] += 1
    return y.detach(), stats


class LowerSolver:
    """``y_c(x) = argmin_y g(x, y)`` by ``solver`` (``"newton"`` or ``"newton-cg"``) to ``tol`` on ‖∇_y g‖, at
    most ``max_steps`` Newton steps (and ``cg_steps`` CG iterations each, ``max_hvp`` Hessian-vector products
    per solve in all for Newton-CG: an ill-conditioned g far from x0 must not stall a run), from a fixed start: ``y0``, or
    with an ``anchor`` point x̄ (a constant of the problem, e.g. its x0) the model ``y_c(x̄)`` (itself solved
    from ``y0``, once) -- either way a deterministic function of x. The last ``memory`` solutions are kept
    for the identical x. ``stats(x)``: the solve's Newton steps, Hessian-vector products and final
    ‖∇_y g(x, y_c(x))‖ (not below ``tol`` only if a step cap stopped it)."""

    def __init__(self, g: Callable, y0: torch.Tensor, tol: float, solver: str = "newton", max_steps: int = 100,
                 cg_steps: int = 1000, memory: int = 3, anchor: torch.Tensor | None = None,
                 max_hvp: int | None = None):
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if not tol > 0:
            raise ValueError(f"the lower-level tolerance must be > 0, got {tol!r}")
        self.g, self.y0, self.tol, self.solver = g, y0.detach().clone(), float(tol), solver
        self.max_steps, self.cg_steps, self.memory = int(max_steps), int(cg_steps), int(memory)
        self.max_hvp = None if max_hvp is None else int(max_hvp)
        self.anchor = None if anchor is None else anchor.detach().clone()
        self._start: torch.Tensor | None = None  # y_c(anchor), once solved
        self._solved: list[tuple[torch.Tensor, torch.Tensor, dict]] = []

    def _lookup(self, x: torch.Tensor):
        for entry in self._solved:
            if entry[0].shape == x.shape and torch.equal(entry[0], x):
                return entry
        return None

    def _run(self, x: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if self.solver == "newton":
            return newton(self.g, x, start.clone(), self.tol, self.max_steps)
        return newton_cg(self.g, x, start.clone(), self.tol, self.max_steps, self.cg_steps, self.max_hvp)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed start of a solve at x: y0 for the anchor (or without one), else y_c(anchor)."""
        if self.anchor is None or (x.shape == self.anchor.shape and torch.equal(x, self.anchor)):
            return self.y0
        if self._start is None:
            self._start = self.solve(self.anchor)[0]
        return self._start

    @torch.no_grad()
    def solve(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``(y_c(x), statistics)``."""
        x = x.detach()
        entry = self._lookup(x)
        if entry is None:
            y, stats = self._run(x, self.start(x))
            entry = (x.clone(), y, stats)
            self._solved = [entry, *self._solved[: self.memory - 1]]
        return entry[1], entry[2]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.solve(x)[0]

    def stats(self, x: torch.Tensor) -> dict:
        return self.solve(x)[1]


class NewtonClosedForm:
    """``y*``, ``∇Ψ`` and ``Ψ`` of ``min_x f(x, y*(x))``, ``y*(x) = argmin_y g(x, y)`` (functions of (x, y)),
    y* by the full-Hessian Newton solver from ``y0`` (:class:`LowerSolver`, a deterministic function of x)."""

    def __init__(self, f: Callable, g: Callable, y0: torch.Tensor, tol: float = 1e-10, max_steps: int = 100):
        self.f, self.g = f, g
        self.solver = LowerSolver(g, y0, tol, "newton", max_steps)

    @torch.no_grad()
    def y_star(self, x: torch.Tensor) -> torch.Tensor:
        return self.solver(x)

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


#: the common model's solvers: ``"auto"`` = full-Hessian Newton up to ``NEWTON_MAX_SIZE`` inner variables
MODEL_SOLVERS = ("auto", *SOLVERS)
NEWTON_MAX_SIZE = 200
#: the common model's default tolerance on ‖∇_y g(x, y_c(x))‖ (feature_regularization's; data_cleaning has
#: its own). Measured on the default Figure 3 problem (7,840 variables, strong convexity 1.3e-4, so
#: ‖y_c − y*‖ ≤ 8e-3) at IFSBA and F2BA iterates: f(x, y_c) and the test loss within 3e-6 of their values at
#: 1e-10 (1e-4 at a tolerance of 1e-5), 40-100 Hessian-vector products per solve from y_c(x0) (170-230 from y0)
MODEL_TOL = 1e-6
#: Newton-CG's cap on Hessian-vector products per solve of the common model: 10-50x the 40-230 of the
#: iterates above; reached only far from x0 (random x at distance 2 per coordinate: ~1,000; a tuning cell
#: with a too-large outer step: unbounded -- it ran for 15 minutes at one evaluation before this cap)
MODEL_MAX_HVP = 2000


def common_model(g: Callable, y0: torch.Tensor, solver: str = "auto", tol: float = MODEL_TOL,
                 anchor: torch.Tensor | None = None, max_steps: int = 100, cg_steps: int = 1000,
                 max_hvp: int = MODEL_MAX_HVP) -> LowerSolver:
    """The fixed lower-level solver of a problem's common model ``y_c(x) = argmin_y g(x, y)`` (training data
    only; every solve started from ``y_c(anchor)``, the model at the problem's initial point, solved from
    ``y0``): ``solver="auto"`` takes the full-Hessian Newton method for at most ``NEWTON_MAX_SIZE``
    variables, Newton-CG above, with at most ``max_hvp`` Hessian-vector products per solve (then the model is
    the iterate reached, still a deterministic function of x; its residual is the ``model_grad_norm``
    metric)."""
    if solver not in MODEL_SOLVERS:
        raise ValueError(f"model_solver must be one of {', '.join(MODEL_SOLVERS)}, got {solver!r}")
    if solver == "auto":
        solver = "newton" if y0.numel() <= NEWTON_MAX_SIZE else "newton-cg"
    return LowerSolver(g, y0, tol, solver, max_steps, cg_steps, anchor=anchor, max_hvp=max_hvp)
