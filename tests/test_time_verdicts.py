"""Time-based claims decide with a stated margin (claims.time_margin): a gap inside it never holds, so timer
noise between identical runs cannot flip a verdict; the margin is named in the measurement."""

import pandas as pd
import pytest

from bilevel.experiments.base import TIME_MARGIN, faster, time_margin
from bilevel.experiments.fsba_cleaning import FIGURE6B
from bilevel.experiments.sogd import REGRET
from bilevel.experiments.sogd_online import LOSS_TUNING


def test_faster_needs_the_margin():
    assert faster(0.89, 1.0, 0.1) and faster(0.9, 1.0, 0.1)
    assert not faster(0.95, 1.0, 0.1) and not faster(1.2, 1.0, 0.1)
    assert faster(5.0, None, 0.1), "reaching a target the other never reaches is faster"
    assert not faster(None, 1.0, 0.1) and not faster(None, None, 0.1)
    assert time_margin({}) == TIME_MARGIN == 0.1 and time_margin({"claims": {"time_margin": 0.25}}) == 0.25
    with pytest.raises(ValueError, match="time_margin"):
        time_margin({"claims": {"time_margin": 1.5}})


def _lazy_rows(m2_time: float) -> pd.DataFrame:
    """m = 1 reaches its half-way Ψ (0.8) at 2 s; m = 2 reaches it at ``m2_time``."""
    rows = []
    for step, t in enumerate([0.0, 1.0, 2.0, 3.0, 4.0]):
        rows.append({"phase": "optimization", "method": "m1", "metric": "validation_loss", "step": step, "time": t,
                     "median": 1.0 - 0.1 * step})
        rows.append({"phase": "optimization", "method": "m2", "metric": "validation_loss", "step": step,
                     "time": t * m2_time / 2.0, "median": 1.0 - 0.1 * step})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("m2_time", "holds"), [(1.95, False), (1.7, True)])
def test_lazy_faster_holds_only_beyond_the_margin(m2_time, holds):
    exp_cfg = {"methods": {f"m{m}": {"method": "lfsba", "params": {"period": m}} for m in (1, 2)}, "optimization": {}}
    verdict = FIGURE6B.claims[0].check(_lazy_rows(m2_time), exp_cfg)
    assert verdict.holds is holds
    assert "at least 10% less time" in verdict.measurement
    loose = {**exp_cfg, "claims": {"time_margin": 0.0}}
    assert FIGURE6B.claims[0].check(_lazy_rows(1.95), loose).holds is True, "no margin: any gap decides"


def _per_round(times: dict[str, float], metric: str) -> pd.DataFrame:
    return pd.DataFrame([{"phase": "online", "method": lab, "metric": metric, "step": step, "time": step * t,
                          "median": 0.0, "mean": 0.0} for lab, t in times.items() for step in (1, 10)])


def test_fastest_per_round_is_not_decided_by_a_gap_inside_the_margin():
    claim = next(c for c in REGRET.claims if c.id.endswith("fastest-per-round"))
    exp_cfg = {"methods": {"sogd": {"method": "sogd"}, "sobow": {"method": "sobow"}}, "online": {"rounds": 10}}
    close = claim.check(_per_round({"sogd": 2.14e-3, "sobow": 2.20e-3}, "regret"), exp_cfg)
    clear = claim.check(_per_round({"sogd": 1.5e-3, "sobow": 2.20e-3}, "regret"), exp_cfg)
    assert close.holds is False and clear.holds is True
    assert "claims.time_margin" in close.measurement


def test_per_round_extremes_use_the_margin_both_ways():
    fastest = next(c for c in LOSS_TUNING.claims if c.id.endswith("sogd-fastest"))
    slowest = next(c for c in LOSS_TUNING.claims if c.id.endswith("sobow-slowest"))
    exp_cfg = {"methods": {lab: {"method": lab} for lab in ("sogd", "oagd", "sobow")}, "online": {"rounds": 10}}
    agg = _per_round({"sogd": 0.100, "oagd": 0.105, "sobow": 0.300}, "cumulative_time")
    assert fastest.check(agg, exp_cfg).holds is False, "5% ahead of OAGD is inside the 10% margin"
    assert slowest.check(agg, exp_cfg).holds is True
    agg = _per_round({"sogd": 0.100, "oagd": 0.280, "sobow": 0.300}, "cumulative_time")
    assert fastest.check(agg, exp_cfg).holds is True
    assert slowest.check(agg, exp_cfg).holds is False, "OAGD within 10% of SOBOW: SOBOW is not clearly the slowest"


def test_the_cpu_clock_does_not_charge_a_method_for_waiting():
    """``clock: auto`` on a CPU times the process's CPU seconds: a step that waits (as a job does when another
    program holds the core) costs nothing extra; the wall clock counts the wait."""
    import time

    import torch

    from bilevel.run import Clock, set_default_clock

    cpu, wall = Clock(torch.device("cpu")), Clock(torch.device("cpu"), "wall")
    assert cpu.kind == "cpu" and wall.kind == "wall"
    t_cpu, t_wall = cpu(), wall()
    time.sleep(0.2)
    assert cpu() - t_cpu < 0.05 and wall() - t_wall >= 0.2
    set_default_clock("wall")
    try:
        assert Clock(torch.device("cpu")).kind == "wall"
    finally:
        set_default_clock("auto")
    with pytest.raises(ValueError, match="clock must be one of auto, cpu, wall"):
        Clock(torch.device("cpu"), "sundial")


def test_the_scratch_step_runs_once_per_method_class_and_leaves_the_numbers_alone():
    import bilevel
    from bilevel.run import _WARM_METHODS, warm_method

    calls = []
    method = bilevel.methods.make("aid", inner_steps=3, solver="cg", solver_steps=3)
    _WARM_METHODS.discard(type(method))
    warm_method(method, lambda: calls.append(1))
    warm_method(method, lambda: calls.append(1))
    assert calls == [1]
    _WARM_METHODS.discard(type(method))
    problem = bilevel.problems.make("quadratic", dim_inner=5, dim_outer=3, n_samples_inner=64, n_samples_outer=64, seed=0)
    cold = bilevel.run(method, problem, max_iters=3, seed=2).trace  # pays the scratch step
    warm = bilevel.run(method, problem, max_iters=3, seed=2).trace
    cols = [c for c in cold.columns if c != "time"]
    assert cold[cols].equals(warm[cols]) and type(method) in _WARM_METHODS
