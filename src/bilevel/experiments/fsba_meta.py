"""FSBA paper, Figure 4: 5-way 5-shot meta-learning on FC100 and miniImageNet, test accuracy against time,
with PZOBO (and the PZOBO paper's meta-learning comparison).

Setup (``specs/fsba.md`` §9.5 and F-6, ``specs/pzobo.md`` §5.4; our choice where they are silent): the
few-shot problem of :mod:`bilevel.problems.fewshot` (backbone = upper variable, one l2-regularised
linear head per task = lower variable), one phase per dataset (``cases``), a new meta-batch of tasks every
outer step (the same tasks for every method with the same seed), held-out test accuracy of heads
fitted from zero on fixed test tasks (the same procedure for every method); the meta-batch panel draws the
query accuracy of the method's own heads, a diagnostic of its iterate (for the penalty methods F2BA and
LFSBA partly fit on the query sets), labelled so and used by no claim. IFSBA/LFSBA take HVP-based cubic
steps on the backbone (Lanczos factor of the penalty Hessian), the other methods Adam steps on their
hypergradient estimate (the meta-learning codes' outer optimiser). Jobs run on the GPU when one is
present (``gpu=True``: rule ``run_job`` requests one) and save checkpoints every
``optimization.checkpoint_every`` steps. Without the official files the panels use labelled stand-ins
(``data.stand_ins``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Claim, Experiment, Verdict, case_panels, curve, dataset_label, final_value, methods_of, phases, run_note
from .fsba_cleaning import faster_than_baselines
from .jobs import case_runs
from .minimax_cubic import PAPER

NAME = "fsba_fig4_meta"
SOURCE = ("FSBA paper, Figure 4: meta-learning, test accuracy vs time against ITD, AID-CG, F2BA and PZOBO [paper]; "
          "setup specs/fsba.md F-6 (our choice)")
PZOBO_SOURCE = ("PZOBO paper, abstract: PZOBO beats baseline bilevel optimisers in few-shot meta-learning "
                "[unverified, specs/pzobo.md §1]")


def _case_title(agg: pd.DataFrame, phase: str, overrides: dict) -> str:
    label = dataset_label(agg[agg["phase"] == phase]) or phase
    return f"{label}" if label == phase else f"{phase}: {label}"


def plot(agg: pd.DataFrame, exp_cfg: dict, outputs: list[str]) -> None:
    from ..plotting.curves import metric_panels, save_figure

    rows = [("test_accuracy", "held-out 5-way accuracy", False),
            ("iterate_meta_train_accuracy", "meta-batch query accuracy\n(method's iterate, diagnostic)", False)]
    params = exp_cfg["problem"].get("params", {})
    way = params.get("n_way", 5)
    title = f"FSBA Fig. 4: {way}-way {params.get('k_shot', 5)}-shot meta-learning (test accuracy vs time)"
    fig = metric_panels(agg, case_panels(exp_cfg, agg, rows, _case_title), title, methods=list(exp_cfg["methods"]),
                        note=run_note(exp_cfg, f"; chance = {1 / way:.2f}"))
    save_figure(fig, outputs)


def _start_end(agg: pd.DataFrame, label: str, phase: str, metric: str = "test_accuracy"):
    """Median ``metric`` at the first evaluation (None unless finite) and its final value (:func:`final_value`)."""
    c = curve(agg, label, metric, phase)
    start = float(c["median"].iloc[0]) if not c.empty else float("nan")
    return (start if np.isfinite(start) else None), final_value(agg, label, metric, phase)


def _meta_training_helps(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """Every method raises held-out accuracy by meta-training, and ends at least ``claims.above_chance``
    (default 0.3) above chance, in every case."""
    margin = float(exp_cfg.get("claims", {}).get("above_chance", 0.3))
    chance = 1.0 / float(exp_cfg["problem"].get("params", {}).get("n_way", 5))
    parts, holds = [], True
    for phase in phases(exp_cfg):
        shown = []
        for label in exp_cfg["methods"]:
            start, end = _start_end(agg, label, phase)
            if start is None or end is None:
                return Verdict(None, f"{phase}: no test accuracy for {label}")
            holds &= end > start and end >= chance + margin
            shown.append(f"{label} {start:.3f} → {end:.3f}")
        parts.append(f"{phase} ({dataset_label(agg[agg['phase'] == phase])}): " + ", ".join(shown))
    return Verdict(holds, f"median held-out accuracy before → after meta-training (chance {chance:.2f}, need "
                          f"≥ {chance + margin:.2f} and a rise): " + "; ".join(parts))


def _pzobo_competitive(agg: pd.DataFrame, exp_cfg: dict) -> Verdict:
    """PZOBO's final held-out accuracy is at least that of every other baseline (ITD, AID, F2BA) minus
    ``claims.accuracy_tolerance`` (default 0.01), in every case."""
    tol = float(exp_cfg.get("claims", {}).get("accuracy_tolerance", 0.01))
    ours, rivals = methods_of(exp_cfg, "pzobo"), methods_of(exp_cfg, "itd", "aid", "f2ba")
    if not ours or not rivals:
        return Verdict(None, "needs PZOBO and one of ITD, AID, F2BA")
    parts, holds = [], True
    for phase in phases(exp_cfg):
        finals = {lab: final_value(agg, lab, "test_accuracy", phase) for lab in ours + rivals}
        if any(v is None for v in finals.values()):
            return Verdict(None, f"{phase}: missing results")
        best_rival = max(finals[lab] for lab in rivals)
        holds &= all(finals[lab] >= best_rival - tol for lab in ours)
        parts.append(f"{phase}: " + ", ".join(f"{lab} {v:.3f}" for lab, v in finals.items()))
    return Verdict(holds, f"final median held-out accuracy (PZOBO must be within {tol} of the best baseline): "
                          + "; ".join(parts))


FIGURE4 = Experiment(
    name=NAME, title="FSBA paper, Figure 4: few-shot meta-learning on FC100 and miniImageNet",
    paper=PAPER, run_job=case_runs, plot=plot,
    metrics=("test_accuracy", "test_loss", "iterate_meta_train_accuracy"),
    claims=(
        Claim(f"{NAME}/faster-than-baselines",
              "An FSBA-family method reaches the best final held-out accuracy of ITD, AID-CG, F2BA and PZOBO in "
              "less time", SOURCE, faster_than_baselines("test_accuracy", "held-out accuracy", lower=False,
                                                          baselines=("itd", "aid", "f2ba", "pzobo"))),
        Claim(f"{NAME}/meta-training-helps",
              "Meta-training raises held-out 5-way accuracy, well above chance, for every method",
              "what meta-learning is for; issue 8 (Done means)", _meta_training_helps),
        Claim(f"{NAME}/pzobo-competitive",
              "PZOBO ends at least as accurate as the first-order baselines ITD, AID-CG and F2BA",
              PZOBO_SOURCE, _pzobo_competitive),
    ),
    notebook="fsba", summary_metrics=("test_accuracy", "test_loss", "iterate_meta_train_accuracy"), requires=("cases",),
    gpu=True, checkpoints=True,
)
