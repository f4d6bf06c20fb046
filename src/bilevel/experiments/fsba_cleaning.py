"""FSBA paper, Figures 2, 3, 5, 6(b), 7, 8: data cleaning, per-feature regularisation, MNIST hyper-cleaning
and the ablations of the Hessian period m, the penalty λ and the cubic regularisation M.

The paper's experiment section is not available to us (``specs/fsba.md`` §10–12); every setup below is
the open choice F-4..F-8 of the spec, labelled "our choice" in each figure:

- ``fsba_fig2_cleaning``: data cleaning (:mod:`bilevel.problems.cleaning`) on breast-cancer and
  australian with label noise p = 0.25 and 0.5 (one phase per case), FSBA / LFSBA against ITD, AID-CG
  and F2BA; validation loss Ψ(x) = f(x, y*(x)), test accuracy and the share of corrupted samples ranked
  lowest, against time;
- ``fsba_fig3_regularization``: one l2 hyper-parameter per feature (:mod:`bilevel.problems.regularization`),
  IFSBA / LFSBA (Hessian-free) against the same baselines;
- ``fsba_fig5_hypercleaning``: MNIST data hyper-cleaning, IFSBA against ITD, AID-CG, F2BA;
- ``fsba_fig6b_period``, ``fsba_fig7_penalty``, ``fsba_fig8_cubic``: LFSBA's m, the penalty λ and the
  cubic M on data cleaning.

Every method is judged at the same model: the plots, summaries and claims read the metrics of the upper
decision x at the problem's common model ``y_c(x) = argmin_y g(x, y)`` (training data only, one fixed
solver: ``validation_loss`` = f(x, y_c(x)), the estimate of Ψ(x), equal to ``hyperobjective`` where the
closed form is on; ``test_loss``, ``test_accuracy``), never at the method's own inner iterate (for F2BA
and the FSBA family it minimises f + λg, so it is partly fit on the validation set). The iterate's values
(``upper_objective``, ``iterate_test_*``) are recorded as diagnostics only; a panel that draws one says
"(method's iterate, diagnostic)".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import (
    Claim,
    Experiment,
    Verdict,
    case_panels,
    case_params,
    curve,
    dataset_label,
    faster,
    final_value,
    first_reaching,
    margin_note,
    method_param,
    methods_of,
    phases,
    run_note,
    time_margin,
)
from .jobs import case_runs
from .minimax_cubic import PAPER

SOURCE = "FSBA paper, abstract: second-order methods converge faster than first-order ones [paper]; " \
         "setup specs/fsba.md F-4..F-8 (our choice)"
OURS = ("fsba", "ifsba", "lfsba")
BASELINES = ("itd", "aid", "f2ba")
#: Ψ as judged at the common model (the problems' ``validation_loss`` = f(x, y_c(x)))
PSI = "validation_loss"
CLEANING_METRICS = (PSI, "hyperobjective", "test_accuracy", "test_loss", "corrupted_downweighted",
                    "clean_downweighted", "corrupted_in_lowest", "unweighted_test_accuracy")
#: what the data-cleaning jobs record (cleaning metrics, penalty-gradient error, cubic step, Ψ-gradient, the
#: common model's residual) and the diagnostics of the method's own iterate
METRICS = (*CLEANING_METRICS, "hypergrad_rel_error", "step_norm", "hypergrad_norm2", "mean_log_regularization",
           "model_grad_norm", "upper_objective", "iterate_test_accuracy", "iterate_test_loss")



def _fmt(t: float | None) -> str:
    return "never" if t is None else f"{t:.2f} s"


def faster_than_baselines(metric: str, what: str, lower: bool = True, baselines: tuple[str, ...] = BASELINES):
    """Per phase: the best of FSBA/IFSBA/LFSBA reaches the best final ``metric`` of the ``baselines``
    (ITD, AID and F2BA by default; median over seeds) in less time than the first baseline to reach it,
    by the experiment's time margin (:func:`~.base.faster`)."""
    def check(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
        ours, rivals = methods_of(exp_cfg, *OURS), methods_of(exp_cfg, *baselines)
        if not ours or not rivals:
            return Verdict(None, f"needs an FSBA-family method and one of {', '.join(baselines)}")
        margin = time_margin(exp_cfg)
        parts, holds = [margin_note(margin)], True
        for phase in phases(exp_cfg):
            finals = {lab: final_value(agg, lab, metric, phase) for lab in rivals}
            finals = {k: v for k, v in finals.items() if v is not None}
            if not finals:
                return Verdict(None, f"{phase}: no baseline results")
            target = (min if lower else max)(finals.values())
            times = {lab: first_reaching(agg, lab, metric, phase, target, "median", "time", lower, after_start=True)
                     for lab in ours + rivals}
            best_ours = min((times[lab] for lab in ours if times[lab] is not None), default=None)
            best_base = min((times[lab] for lab in rivals if times[lab] is not None), default=None)
            holds &= faster(best_ours, best_base, margin)
            shown = ", ".join(f"{lab} {_fmt(t)}" for lab, t in times.items())
            parts.append(f"{phase}: best baseline final {what} {target:.4g}, first reached at: {shown}")
        return Verdict(holds, "; ".join(parts))
    return check


def _cleaned_beats_unweighted(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """On the breast-cancer case with p = 0.25: the final test accuracy of the FSBA-family model (trained
    with the learned weights) exceeds the model trained on the corrupted set without weights."""
    cases = [c for c in exp_cfg.get("cases", {}) if case_params(exp_cfg, c).get("dataset") == "breast-cancer"
             and float(case_params(exp_cfg, c).get("noise", -1)) == 0.25]
    if not cases:
        return Verdict(None, "no breast-cancer case with noise 0.25 in this configuration")
    if not methods_of(exp_cfg, *OURS):
        return Verdict(None, "needs an FSBA-family method")
    case = cases[0]
    parts, holds = [], True
    for lab in methods_of(exp_cfg, *OURS):
        cleaned = final_value(agg, lab, "test_accuracy", case)
        plain = final_value(agg, lab, "unweighted_test_accuracy", case)
        if cleaned is None or plain is None:
            return Verdict(None, f"{lab}: no test accuracy recorded in {case}")
        holds &= cleaned > plain
        parts.append(f"{lab}: cleaned {cleaned:.4f} vs unweighted {plain:.4f}")
    label = dataset_label(agg[agg["phase"] == case])
    return Verdict(holds, f"{case} ({label}), median final test accuracy over seeds: " + "; ".join(parts))


def _finds_noisy_labels(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """In every case, FSBA-family weights rank the corrupted samples lowest at least halfway between
    chance (the noise rate) and perfect: corrupted share of the k lowest weights ≥ (1 + p) / 2."""
    if not methods_of(exp_cfg, *OURS):
        return Verdict(None, "needs an FSBA-family method")
    parts, holds = [], True
    for phase in phases(exp_cfg):
        noise = float(case_params(exp_cfg, phase).get("noise", 0.25))
        need = (1 + noise) / 2
        for lab in methods_of(exp_cfg, *OURS):
            got = final_value(agg, lab, "corrupted_in_lowest", phase)
            if got is None:
                return Verdict(None, f"{lab}: no corrupted_in_lowest in {phase}")
            holds &= got >= need
            parts.append(f"{phase} {lab}: {got:.3f} (need {need:.3f})")
    return Verdict(holds, "corrupted share of the k lowest weights: " + "; ".join(parts))


def _case_title(agg: pd.DataFrame, phase: str, overrides: dict) -> str:
    """Panel title of a case: its dataset label and noise rate."""
    label = dataset_label(agg[agg["phase"] == phase]) or phase
    return label + (f", p = {overrides['noise']:g}" if "noise" in overrides else "")


def _plot(title: str, rows: list[tuple[str, str, bool]], extra: str = ""):
    def plot(agg: pd.DataFrame, exp_cfg: dict, outputs: list[str]) -> None:
        from ..plotting.curves import metric_panels, save_figure

        fig = metric_panels(agg, case_panels(exp_cfg, agg, rows, _case_title), title, methods=list(exp_cfg["methods"]),
                            note=run_note(exp_cfg, extra))
        save_figure(fig, outputs)
    return plot


PSI_LABEL = r"validation loss $\Psi(x) = f(x, y_c(x))$"
ACCURACY_LABEL = "test accuracy (model $y_c(x)$)"
CLEANING_ROWS = [
    (PSI, PSI_LABEL, True),
    ("test_accuracy", ACCURACY_LABEL, False),
    ("corrupted_in_lowest", "corrupted share of lowest weights", False),
]

FIGURE2 = Experiment(
    name="fsba_fig2_cleaning", title="FSBA paper, Figure 2: data cleaning on LIBSVM breast-cancer and australian",
    paper=PAPER, run_job=case_runs, metrics=METRICS,
    plot=_plot("FSBA Fig. 2: data cleaning (per-sample weights σ(x), logistic regression)", CLEANING_ROWS),
    claims=(
        Claim("fsba_fig2_cleaning/faster-than-first-order",
              "FSBA/LFSBA reach the best validation loss Ψ of ITD, AID-CG and F2BA in less time (every case)",
              SOURCE, faster_than_baselines(PSI, "Ψ")),
        Claim("fsba_fig2_cleaning/cleaned-beats-unweighted",
              "On breast-cancer with p = 0.25, the model trained with the learned weights has a higher test "
              "accuracy than the model trained on the corrupted set without weights",
              "issue 6 'Done means'; data cleaning's purpose (Franceschi et al. 2017)", _cleaned_beats_unweighted),
        Claim("fsba_fig2_cleaning/finds-noisy-labels",
              "The learned weights rank corrupted samples lowest: their share of the k lowest weights is at least "
              "halfway between chance and perfect (every case)",
              "what data cleaning is for (our measure)", _finds_noisy_labels),
    ),
    notebook="fsba", summary_metrics=CLEANING_METRICS, requires=("cases",),
)

FIGURE3 = Experiment(
    name="fsba_fig3_regularization", title="FSBA paper, Figure 3: one l2 hyper-parameter per feature",
    paper=PAPER, run_job=case_runs, metrics=METRICS,
    plot=_plot("FSBA Fig. 3: learnable l2 regularisation (one weight per feature)", [
        (PSI, PSI_LABEL, True),
        ("test_loss", "test loss (model $y_c(x)$)", True),
        ("test_accuracy", ACCURACY_LABEL, False)]),
    claims=(
        Claim("fsba_fig3_regularization/faster-than-first-order",
              "IFSBA/LFSBA reach the best validation loss Ψ of ITD, AID-CG and F2BA in less time",
              SOURCE, faster_than_baselines(PSI, "validation loss Ψ")),
        Claim("fsba_fig3_regularization/test-loss",
              "IFSBA/LFSBA reach the best test loss of ITD, AID-CG and F2BA in less time",
              SOURCE, faster_than_baselines("test_loss", "test loss")),
    ),
    notebook="fsba", summary_metrics=(PSI, "test_loss", "test_accuracy", "mean_log_regularization"),
)

FIGURE5 = Experiment(
    name="fsba_fig5_hypercleaning", title="FSBA paper, Figure 5: MNIST data hyper-cleaning with IFSBA",
    paper=PAPER, run_job=case_runs, metrics=METRICS,
    plot=_plot("FSBA Fig. 5: MNIST hyper-cleaning (softmax regression, per-sample weights)", [
        ("test_loss", "test loss (model $y_c(x)$)", True),
        ("test_accuracy", ACCURACY_LABEL, False),
        ("corrupted_in_lowest", "corrupted share of lowest weights", False)]),
    claims=(
        Claim("fsba_fig5_hypercleaning/faster-than-first-order",
              "IFSBA reaches the best test loss of ITD, AID-CG and F2BA in less time",
              SOURCE, faster_than_baselines("test_loss", "test loss")),
        Claim("fsba_fig5_hypercleaning/finds-noisy-labels",
              "IFSBA's weights rank corrupted samples lowest: share of the k lowest weights at least halfway "
              "between chance and perfect", "what data cleaning is for (our measure)", _finds_noisy_labels),
    ),
    notebook="fsba", summary_metrics=("test_loss", "test_accuracy", PSI, "corrupted_downweighted",
                                      "clean_downweighted", "corrupted_in_lowest"),
)


# ------------------------------------------------------------------------------------ ablations
def _by_param(exp_cfg: dict, name: str) -> dict[str, float]:
    """Method label -> value of hyper-parameter ``name`` (FSBA-family methods only), sorted by value."""
    values = {lab: float(method_param(exp_cfg, lab, name, "optimization")) for lab in methods_of(exp_cfg, *OURS)}
    return dict(sorted(values.items(), key=lambda kv: kv[1]))


def _midway(agg: pd.DataFrame, label: str, metric: str, phase: str) -> float | None:
    """The median ``metric`` of ``label`` at the evaluation half-way through its run (a target every
    configuration can reach within the same iteration budget)."""
    c = curve(agg, label, metric, phase)
    c = c[np.isfinite(c["median"])]
    return None if c.empty else float(c["median"].iloc[len(c) // 2])


def _run_statistic(agg: pd.DataFrame, label: str, metric: str, phase: str, how: str) -> float | None:
    """The median or mean (``how``) over the run's evaluations after the start of the median curve (NaN
    evaluations left out; an infinite one makes it infinite); None when nothing was recorded."""
    c = curve(agg, label, metric, phase)
    value = float(getattr(c.loc[c["step"] > 0, "median"], how)()) if not c.empty else float("nan")
    return None if np.isnan(value) else value


def _lazy_faster(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """Each period m > 1, against the reference m = 1: it reaches the Ψ that m = 1 has half-way through its
    run in less time than m = 1 (every case), by the experiment's time margin (:func:`~.base.faster`). The
    verdict names the m for which this holds; the claim holds when it holds for every m > 1 of the grid."""
    periods = _by_param(exp_cfg, "period")
    base = [lab for lab, m in periods.items() if m == 1]
    lazy = [lab for lab, m in periods.items() if m > 1]
    if not base or not lazy:
        return Verdict(None, "needs a period-1 and a period > 1 configuration")
    margin = time_margin(exp_cfg)
    parts, beats = [margin_note(margin)], dict.fromkeys(lazy, True)
    for phase in phases(exp_cfg):
        target = _midway(agg, base[0], PSI, phase)
        if target is None:
            return Verdict(None, f"no {base[0]} results in {phase}")
        times = {lab: first_reaching(agg, lab, PSI, phase, target, "median", "time", after_start=True)
                 for lab in base + lazy}
        reference = times[base[0]]
        for lab in lazy:
            beats[lab] &= faster(times[lab], reference, margin)
        parts.append(f"{phase}: time to m = 1's half-way Ψ {target:.4g}: "
                     + ", ".join(f"{lab} (m={periods[lab]:g}) {_fmt(t)}" for lab, t in times.items()))
    verdicts = ", ".join(f"m={periods[lab]:g}: {'yes' if ok else 'no'}" for lab, ok in beats.items())
    return Verdict(all(beats.values()), f"faster than m = 1 in every case: {verdicts}; " + "; ".join(parts))


def _penalty_error_decreases(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """The relative error of the penalty gradient to ∇Ψ (median over the run's evaluations) decreases as λ grows."""
    lams = _by_param(exp_cfg, "lam")
    if len(lams) < 2:
        return Verdict(None, "needs at least two values of λ")
    parts, holds = [], True
    for phase in phases(exp_cfg):
        errs = {lab: _run_statistic(agg, lab, "hypergrad_rel_error", phase, "median") for lab in lams}
        if any(v is None for v in errs.values()):
            return Verdict(None, f"{phase}: hypergrad_rel_error not recorded for every λ")
        seq = [errs[lab] for lab in lams]
        holds &= bool(np.all(np.isfinite(seq))) and all(a >= b for a, b in zip(seq, seq[1:], strict=False))
        parts.append(f"{phase}: " + ", ".join(f"λ={lams[lab]:g}: {errs[lab]:.3g}" for lab in lams))
    return Verdict(holds, "median relative error ‖∇L*_λ estimate − ∇Ψ‖/‖∇Ψ‖ over the run: " + "; ".join(parts))


def _step_shrinks_with_M(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """The mean cubic step length decreases as M grows (the regulariser (M/6)‖s‖³ bounds the step)."""
    Ms = _by_param(exp_cfg, "M")
    if len(Ms) < 2:
        return Verdict(None, "needs at least two values of M")
    parts, holds = [], True
    for phase in phases(exp_cfg):
        steps = {lab: _run_statistic(agg, lab, "step_norm", phase, "mean") for lab in Ms}
        if any(v is None for v in steps.values()):
            return Verdict(None, f"{phase}: step_norm not recorded for every M")
        seq = [steps[lab] for lab in Ms]
        holds &= bool(np.all(np.isfinite(seq))) and all(a > b for a, b in zip(seq, seq[1:], strict=False))
        parts.append(f"{phase}: " + ", ".join(f"M={Ms[lab]:g}: {steps[lab]:.3g}" for lab in Ms))
    return Verdict(holds, "mean ‖s‖ of the cubic steps: " + "; ".join(parts))


def _robust_to(param: str, symbol: str):
    """Every value of ``param`` ends within ``claims.robust_tolerance`` (relative) of the best final Ψ."""
    def check(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
        values = _by_param(exp_cfg, param)
        tol = float(exp_cfg.get("claims", {}).get("robust_tolerance", 0.05))
        parts, holds = [], True
        for phase in phases(exp_cfg):
            finals = {lab: final_value(agg, lab, PSI, phase) for lab in values}
            if any(v is None for v in finals.values()):
                return Verdict(None, f"{phase}: missing results")
            best = min(finals.values())
            holds &= all(v <= best * (1 + tol) for v in finals.values())
            parts.append(f"{phase}: " + ", ".join(f"{symbol}={values[lab]:g}: {finals[lab]:.4g}" for lab in values))
        return Verdict(holds, f"final median Ψ (need all within {tol:.0%} of the best): " + "; ".join(parts))
    return check


ABLATION = "FSBA paper: ablations of m, λ, M (Figures 6-8) [project-scope]; grids specs/fsba.md F-8 (our choice)"

FIGURE6B = Experiment(
    name="fsba_fig6b_period", title="FSBA paper, Figure 6(b): Hessian update period m of LFSBA on australian",
    paper=PAPER, run_job=case_runs, metrics=METRICS, comparative=False,
    plot=_plot("FSBA Fig. 6(b): ablation of the Hessian update period m (data cleaning)", [
        (PSI, PSI_LABEL, True),
        ("test_accuracy", ACCURACY_LABEL, False)]),
    claims=(
        Claim("fsba_fig6b_period/lazy-faster",
              "Each Hessian period m > 1 of the grid (LFSBA) reaches the validation loss Ψ that m = 1 (FSBA) has "
              "half-way through its run in less time than m = 1 (per m against m = 1; holds when every m does)",
              "FSBA paper: LFSBA's lazy reuse improves the computational complexity by √d [paper]; " + ABLATION,
              _lazy_faster),
    ),
    notebook="fsba", summary_metrics=CLEANING_METRICS,
)

FIGURE7 = Experiment(
    name="fsba_fig7_penalty", title="FSBA paper, Figure 7: penalty multiplier λ",
    paper=PAPER, run_job=case_runs, metrics=METRICS, comparative=False,
    plot=_plot("FSBA Fig. 7: ablation of the penalty multiplier λ (data cleaning)", [
        (PSI, PSI_LABEL, True),
        ("hypergrad_rel_error", r"$\|\nabla L^*_\lambda - \nabla\Psi\| / \|\nabla\Psi\|$", True)]),
    claims=(
        Claim("fsba_fig7_penalty/error-decreases-with-lambda",
              "The penalty gradient's relative error to the true hypergradient decreases as λ grows",
              "F2BA / FSBA penalty theory: ‖∇L*_λ − ∇φ‖ = O(1/λ) [unverified, specs/fsba.md §2]; " + ABLATION,
              _penalty_error_decreases),
        Claim("fsba_fig7_penalty/robust-to-lambda",
              "Every λ of the grid ends within the configured tolerance of the best final validation loss",
              ABLATION, _robust_to("lam", "λ")),
    ),
    notebook="fsba", summary_metrics=(PSI, "hypergrad_rel_error", "test_accuracy"),
)

FIGURE8 = Experiment(
    name="fsba_fig8_cubic", title="FSBA paper, Figure 8: cubic regularisation M",
    paper=PAPER, run_job=case_runs, metrics=METRICS, comparative=False,
    plot=_plot("FSBA Fig. 8: ablation of the cubic regularisation M (data cleaning)", [
        (PSI, PSI_LABEL, True),
        ("step_norm", r"cubic step $\|s_k\|$", True)]),
    claims=(
        Claim("fsba_fig8_cubic/step-shrinks-with-M",
              "The cubic step length decreases as M grows", "cubic regularisation (Nesterov & Polyak 2006); " + ABLATION,
              _step_shrinks_with_M),
        Claim("fsba_fig8_cubic/robust-to-M",
              "Every M of the grid ends within the configured tolerance of the best final validation loss",
              ABLATION, _robust_to("M", "M")),
    ),
    notebook="fsba", summary_metrics=(PSI, "step_norm", "test_accuracy"),
)
