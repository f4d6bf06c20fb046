"""Shared baselines: ITD vs AID (CG, Neumann) hypergradients, on a synthetic and on a real problem.

Two experiments share these jobs, panels and claims:

- ``quadratic_hypergradient``: the stochastic quadratic of ``specs/zoba.md`` §6 (closed-form y*, v*, ∇Ψ);
- ``logistic_hypergradient``: logistic regression with one l2 weight per feature on a real dataset
  (:mod:`bilevel.problems.logistic`; y* by Newton's method, ∇Ψ by the implicit function theorem),
  whose figure and claims carry the dataset's label (``STAND-IN: ...`` when a stand-in was used).

Figure panels: (a) relative hypergradient error at the initial point against
oracle calls and (b) against time, as the inner budget grows (sweep, cold start); (c) ‖∇Ψ(x_k)‖²
of outer gradient descent driven by each estimator against oracle calls. Median over seeds, band =
min–max. Methods: ``specs/fsba.md`` §9.2.
The claims follow the iteration-complexity analysis of Grazzi et al., ICML 2020 ("On the iteration
complexity of hypergradient computation"): both estimators converge to ∇Ψ, AID with conjugate
gradient needs fewer oracle calls than reverse-mode ITD for a given accuracy.
"""

from __future__ import annotations

import pandas as pd

from ..plotting.panels import Panel
from .base import (
    Claim,
    Experiment,
    Verdict,
    dataset_label,
    decrease_factor,
    diverged,
    final_value,
    first_reaching,
    method_param,
    methods_of,
    run_note,
)
from .jobs import hypergradient_sweep, optimization_run

PHASES = ["hypergradient", "optimization"]

PANELS = [
    Panel("hypergradient", "hypergrad_rel_error", "oracle_calls", "(a) hypergradient at $x_0$",
          "oracle calls (gradients + HVPs)", r"$\|\hat h - \nabla\Psi\| / \|\nabla\Psi\|$"),
    Panel("hypergradient", "hypergrad_rel_error", "time", "(b) same, against time",
          "time [s]", r"$\|\hat h - \nabla\Psi\| / \|\nabla\Psi\|$"),
    Panel("optimization", "hypergrad_norm2", "oracle_calls", "(c) outer gradient descent",
          "oracle calls (gradients + HVPs)", r"$\|\nabla\Psi(x_k)\|^2$", logx=False),
]


def run_job(name: str, exp_cfg: dict, label: str, seed: int, device: str = "cpu", progress=False) -> pd.DataFrame:
    """Both phases for one method label and seed."""
    return pd.concat([hypergradient_sweep(name, exp_cfg, label, seed, device),
                      optimization_run(name, exp_cfg, label, seed, device, progress=progress)], ignore_index=True)


def _plot(title: str):
    def plot(agg: pd.DataFrame, exp_cfg: dict, outputs: list[str]) -> None:
        from ..plotting.curves import metric_panels, save_figure  # matplotlib only where a figure is drawn

        label = dataset_label(agg)
        note = run_note(exp_cfg, f"; data: {label}" if label else "", our_choice=False)
        fig = metric_panels(agg, PANELS, title + (f" [{label}]" if label else ""), methods=list(exp_cfg["methods"]),
                            note=note)
        save_figure(fig, outputs)
    return plot


def _cg_beats_itd(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    tol = exp_cfg.get("claims", {}).get("tolerance", 1e-8)
    itd = methods_of(exp_cfg, "itd")
    cg = [lab for lab in methods_of(exp_cfg, "aid") if method_param(exp_cfg, lab, "solver") == "cg"]
    if not itd or not cg:
        return Verdict(None, "needs an ITD and an AID-CG configuration")
    if all(final_value(agg, lab, "hypergrad_rel_error", "hypergradient", "max") is None for lab in itd + cg):
        return Verdict(None, "no finite hypergradient errors in the sweep")
    calls = {lab: first_reaching(agg, lab, "hypergrad_rel_error", "hypergradient", tol) for lab in itd + cg}
    shown = ", ".join(f"{lab}: {'not reached' if v is None else f'{v:.0f} calls'}" for lab, v in calls.items())
    best_cg = min((v for lab, v in calls.items() if lab in cg and v is not None), default=None)
    best_itd = min((v for lab, v in calls.items() if lab in itd and v is not None), default=None)
    if best_cg is None:
        return Verdict(False, f"AID-CG never reaches {tol:g} (worst seed) in the sweep; {shown}")
    holds = best_itd is None or best_cg < best_itd
    return Verdict(holds, f"first budget with worst-seed error <= {tol:g}: {shown}")


def _all_converge(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """A sweep that diverged at the largest budget (non-finite estimate) does not converge; its last finite
    error is shown, marked "(diverged)"."""
    tol = exp_cfg.get("claims", {}).get("convergence_tolerance", 1e-6)
    finals = {lab: final_value(agg, lab, "hypergrad_rel_error", "hypergradient", "max") for lab in exp_cfg["methods"]}
    finals = {lab: v for lab, v in finals.items() if v is not None}
    if not finals:
        return Verdict(None, "no hypergradient sweep results")
    bad = {lab for lab in finals if diverged(agg, lab, "hypergrad_rel_error", "hypergradient")}
    shown = ", ".join(f"{lab}: {v:.1e}" + (" (diverged)" if lab in bad else "") for lab, v in finals.items())
    return Verdict(not bad and all(v <= tol for v in finals.values()), f"worst-seed error at the largest budget: {shown}")


def _descent(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    factor = exp_cfg.get("claims", {}).get("decrease_factor", 100.0)
    ratios = {lab: decrease_factor(agg, lab, "hypergrad_norm2", "optimization") for lab in exp_cfg["methods"]}
    ratios = {lab: r for lab, r in ratios.items() if r is not None}
    if not ratios:
        return Verdict(None, "no completed optimization runs")
    shown = ", ".join(f"{lab}: {r:.1e}x" for lab, r in ratios.items())
    return Verdict(all(r >= factor for r in ratios.values()), f"decrease of median ‖∇Ψ‖² over the run: {shown}")


def _claims(name: str, subject: str) -> tuple[Claim, ...]:
    return (
        Claim(f"{name}/aid-cg-fewer-calls",
              f"AID-CG reaches the target relative hypergradient error (1e-8) with fewer oracle calls than ITD "
              f"on {subject}",
              "Grazzi et al. 2020, iteration complexity of hypergradient computation [inferred from its bounds]",
              _cg_beats_itd),
        Claim(f"{name}/estimators-converge",
              "ITD and AID hypergradients converge to the exact hypergradient as the inner budget grows "
              "(relative error <= 1e-6 at the largest budget)",
              "Grazzi et al. 2020; specs/fsba.md §9.2 [derived]", _all_converge),
        Claim(f"{name}/outer-descent",
              "Outer gradient descent driven by each estimator decreases ‖∇Ψ(x)‖² by at least 100x",
              "standard smooth nonconvex analysis of approximate hypergradient descent [derived]", _descent),
    )


def make_experiment(name: str, title: str, subject: str) -> Experiment:
    """An ITD-vs-AID experiment named ``name`` (its config section chooses the problem)."""
    return Experiment(name=name, title=title, paper="shared baselines (all three papers)", run_job=run_job,
                      plot=_plot(title), claims=_claims(name, subject), job_phases=lambda exp_cfg: list(PHASES),
                      metrics=("hypergrad_rel_error", "inner_distance", "hypergrad_norm2", "value_gap"))


QUADRATIC = make_experiment("quadratic_hypergradient", "ITD vs AID hypergradients on a stochastic quadratic",
                            "a well-conditioned quadratic")
LOGISTIC = make_experiment("logistic_hypergradient",
                           "ITD vs AID hypergradients: logistic regression with per-feature l2 weights",
                           "l2-regularized logistic regression on real data")
