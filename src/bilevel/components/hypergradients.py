"""Hypergradient estimators of ``Ψ(x) = f(x, y*(x))`` used by ITD and AID.

Exact hypergradient (implicit function theorem, [derived]):
    ∇Ψ(x) = ∇_x f − ∇²_xy g [∇²_yy g]⁻¹ ∇_y f,   all at (x, y*(x)).          (H)
"""

from __future__ import annotations

import torch

from ..oracle import Oracle
from .linear_solvers import LinearSolver, get_solver


def implicit_hypergradient(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, solver: str | LinearSolver,
                           solver_steps: int, solver_lr: float = 1.0, solver_tol: float = 0.0,
                           v0: torch.Tensor | None = None, batch_f=None, batch_g=None):
    """AID: (H) at the approximate inner solution ``y``, with ``v ≈ [∇²_yy g]⁻¹ ∇_y f`` from a solver.

    ``solver`` is a name of :data:`~bilevel.components.linear_solvers.SOLVERS` -- ``"cg"`` (``solver_steps``
    iterations, relative tolerance ``solver_tol``), ``"neumann"`` (``solver_steps`` terms with step
    ``solver_lr``), ``"fixed-point"`` (``solver_steps`` iterations with step ``solver_lr``, warm-started
    from ``v0``) -- or a callable with their calling convention.
    Returns ``(hypergradient, v, info)``; ``info`` holds the solver's iterations and residual and
    ``inner_grad_norm`` = ‖∇_y g(x, y)‖ (how far ``y`` is from the inner solution).
    The gradient ∇_y g is linearized once at ``(x, y)`` and every product reuses that graph.
    Oracle cost: 1 f-gradient + 1 g-gradient + the solver's ∇²_yy g products + 1 product ∇²_xy g·v.
    """
    grad_x_f, grad_y_f = oracle.grad("f", x, y, batch_f)
    grad_y_g, pullback = oracle.grad_y_with_pullback("g", x, y, batch_g)

    def matvec(u):
        return pullback(u, "y")

    solve = get_solver(solver)
    v, info = solve(matvec, grad_y_f, steps=solver_steps, lr=solver_lr, tol=solver_tol, v0=v0)
    info["inner_grad_norm"] = float(torch.linalg.vector_norm(grad_y_g))
    hypergradient = grad_x_f - pullback(v, "x")
    return hypergradient, v, info


def unrolled_hypergradient_split(oracle: Oracle, x: torch.Tensor, y0: torch.Tensor, lr: float, steps: int,
                                 sampler=None, batch_f=None):
    """ITD with the adjoint recursion of :func:`unrolled_hypergradient` split by blocks: the forward
    steps ``∇_y g`` and the y-adjoints ``∇²_yy g·a`` never differentiate through x, and all the x-blocks
    ``Σ_t ∇²_xy g(x, y_t)·a_{t+1}`` are formed by ONE reverse pass (:meth:`Oracle.cross_xy_sum`). The same
    estimate as the joint recursion; cheaper when g computes an expensive function of x alone (the
    backbone features of meta-learning: once instead of T times, as reverse-mode frameworks do).
    Oracle cost: T g-gradients + 2T second-order products (T y-blocks, T x-blocks) + 1 f-gradient.
    """
    points, batches = [], []
    y = y0
    for _ in range(steps):
        batch = sampler() if sampler is not None else None
        points.append(y)
        batches.append(batch)
        y = y - lr * oracle.grad_y("g", x, y, batch)
    hypergradient, adjoint = oracle.grad("f", x, y, batch_f)
    adjoints = []
    for point, batch in zip(reversed(points), reversed(batches), strict=True):
        adjoints.append(adjoint)
        adjoint = adjoint - lr * oracle.hvp_yy("g", x, point, adjoint, batch)
    if steps and all(b is None for b in batches):
        cross = oracle.cross_xy_sum("g", x, torch.stack(points[::-1]), torch.stack(adjoints))
    else:  # minibatches differ per step: one product per step
        cross = sum(oracle.cross_xy("g", x, p, a, b)
                    for p, a, b in zip(reversed(points), adjoints, reversed(batches), strict=True))
    return hypergradient - lr * cross if steps else hypergradient, y.detach()


def unrolled_hypergradient(oracle: Oracle, x: torch.Tensor, y0: torch.Tensor, lr: float, steps: int,
                           sampler=None, batch_f=None):
    """ITD: reverse-mode differentiation of ``f(x, y_T(x))`` through T gradient steps.

    Forward: ``y_{t+1} = y_t − lr ∇_y g(x, y_t)`` (y0 treated as independent of x). Backward
    (adjoint recursion, exactly what autograd computes through the unrolled graph):
        a_T = ∇_y f(x, y_T),  h = ∇_x f(x, y_T),
        h ← h − lr ∇²_xy g(x, y_t)·a_{t+1},  a_t = a_{t+1} − lr ∇²_yy g(x, y_t)·a_{t+1},  t = T−1..0.
    The graph of each step's gradient is kept (as reverse mode does); each backward step is one
    pullback. Oracle cost: T g-gradients + T second-order products + 1 f-gradient.
    Returns ``(hypergradient, y_T)``.
    """
    pullbacks = []
    y = y0
    for _ in range(steps):
        batch = sampler() if sampler is not None else None
        grad_y, pullback = oracle.grad_y_with_pullback("g", x, y, batch)
        pullbacks.append(pullback)
        y = y - lr * grad_y
    hypergradient, adjoint = oracle.grad("f", x, y, batch_f)
    for pullback in reversed(pullbacks):
        cross, hyy = pullback(adjoint)
        hypergradient = hypergradient - lr * cross
        adjoint = adjoint - lr * hyy
    return hypergradient, y.detach()
