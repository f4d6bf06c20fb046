"""One accounting (``bilevel.oracle.totals``): the same oracle calls give the same count columns offline
(``bilevel.run``) and online (``run_online``); ``max_oracle_calls`` budgets derivative calls (a Hessian =
``HESSIAN_WEIGHT``), ``max_function_evals`` function values; FSBA Figure 1's methods end at one budget."""

from dataclasses import dataclass

import pytest
import torch

import bilevel
from bilevel.experiments.config import load_config
from bilevel.experiments.jobs import optimization_run
from bilevel.methods.base import Method, State
from bilevel.methods.online import OnlineMethod
from bilevel.online import run_online
from bilevel.oracle import COUNT_KEYS, HESSIAN_WEIGHT, TOTAL_KEYS, Oracle, derivative_calls, totals
from bilevel.problems.online import BilevelStream
from bilevel.results import COUNT_COLUMNS


def _calls(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, values: int, grads: int, hvps: int, hessians: int) -> None:
    """``values`` values of g (one vectorized call) and one of f, then the derivative calls."""
    oracle.value("f", x, y)
    oracle.values("g", x.expand(values, -1), y.expand(values, -1))
    for _ in range(grads):
        oracle.grad("f", x, y)
    for _ in range(hvps):
        oracle.hvp_yy("g", x, y, torch.ones_like(y))
    for _ in range(hessians):
        oracle.hessian("g", x, y)


@dataclass(frozen=True)
class Probe(Method):
    """Makes a fixed set of oracle calls per step and stays put (not registered: a test double)."""

    name = "probe"
    values: int = 5
    grads: int = 2
    hvps: int = 3
    hessians: int = 1

    def step(self, oracle, state: State) -> State:
        _calls(oracle, state.x, state.y, self.values, self.grads, self.hvps, self.hessians)
        state.k += 1
        return state


@dataclass(frozen=True)
class OnlineProbe(OnlineMethod, Probe):
    """:class:`Probe` as an online method: the same calls on the round's oracle."""

    name = "online-probe"

    def step(self, oracles, state: State, project=lambda x: x) -> State:
        _calls(oracles[-1], state.x, state.y, self.values, self.grads, self.hvps, self.hessians)
        state.k += 1
        return state


def test_totals_is_the_one_definition(quad_small):
    counts = {"f_value": 1, "f_grad": 2, "f_hvp": 0, "f_hessian": 1, "g_value": 5, "g_grad": 1, "g_hvp": 3,
              "g_hessian": 2}
    assert totals(counts) == {"oracle_calls": 2 + 1 + 3 + HESSIAN_WEIGHT * 3, "function_evals": 6}
    assert derivative_calls(counts, hessian_weight=5) == 6 + 5 * 3  # the alternative axis of F-3
    assert HESSIAN_WEIGHT == 2  # specs/fsba.md F-3: "2 (second-order information)"
    oracle = Oracle(quad_small)
    _calls(oracle, quad_small.x0, quad_small.y0, 4, 1, 1, 1)
    assert (oracle.oracle_calls, oracle.function_evals) == (1 + 1 + HESSIAN_WEIGHT, 5)
    assert oracle.totals() == totals(oracle.counts)
    assert COUNT_COLUMNS == (*COUNT_KEYS, *TOTAL_KEYS)


def test_offline_and_one_round_online_report_identical_counts(quad_small):
    """The same calls, once through ``run`` (one step) and once through ``run_online`` (one round of a
    stream whose round is the same problem): identical per-kind counts and totals."""
    problem = quad_small
    stream = BilevelStream(make_round=lambda t, generator: problem, x0=problem.x0, y0=problem.y0, name="one-round")
    offline = bilevel.run(Probe(), problem, max_iters=1, seed=0).trace.iloc[-1]
    online = run_online(OnlineProbe(), stream, rounds=1, seed=0).trace.iloc[-1]
    for column in COUNT_COLUMNS:
        assert offline[column] == online[column], column
    assert offline["oracle_calls"] == 2 + 3 + HESSIAN_WEIGHT * 1  # values never count as oracle calls
    assert offline["function_evals"] == 1 + 5


def test_max_oracle_calls_budgets_weighted_derivative_calls(quad_small):
    """1 Hessian (= HESSIAN_WEIGHT calls) and 50 values per step: the values do not spend the budget."""
    result = bilevel.run(Probe(values=50, grads=0, hvps=0, hessians=1), quad_small, max_oracle_calls=10, seed=0)
    last = result.trace.iloc[-1]
    assert last["step"] == 10 // HESSIAN_WEIGHT
    assert last["oracle_calls"] == 10 and last["function_evals"] == 51 * last["step"]


def test_max_function_evals_budgets_values(quad_small):
    """3 values (+ 1 of f) and 1 gradient per step; 10 values stop the run after the step crossing them."""
    result = bilevel.run(Probe(values=3, grads=1, hvps=0, hessians=0), quad_small, max_function_evals=10, seed=0)
    last = result.trace.iloc[-1]
    assert last["step"] == 3 and last["function_evals"] == 12 and last["oracle_calls"] == 3
    both = bilevel.run(Probe(values=3, grads=1, hvps=0, hessians=0), quad_small, max_function_evals=100,
                       max_oracle_calls=2, seed=0)
    assert both.trace["step"].iloc[-1] == 2  # whichever budget is spent first
    with pytest.raises(ValueError, match="max_function_evals"):
        bilevel.run(Probe(), quad_small, max_function_evals=0)


def test_figure1_mcn_and_gda_end_at_the_same_budget():
    """FSBA Figure 1 (default config): MCN and GDA stop at the first step reaching ``max_oracle_calls`` on
    the plotted axis, so neither overshoots by more than one step's cost (MCN used to reach 1,100 against
    GDA's 1,000). Only the first and last points are evaluated (the budget is unchanged)."""
    exp_cfg = load_config()["experiments"]["fsba_fig1_minimax"]
    exp_cfg = {**exp_cfg, "optimization": {**exp_cfg["optimization"], "eval_every": 10**6}}
    budget = exp_cfg["optimization"]["max_oracle_calls"]
    ends = {}
    for label, step_cost in (("gda", 2), ("mcn", 8 + 1 + HESSIAN_WEIGHT)):  # MCN: K + 3 (F-3)
        rows = optimization_run("fsba_fig1_minimax", exp_cfg, label, exp_cfg["seeds"][0], phase="init1",
                                overrides={"init": 1})
        last = rows.sort_values("step").iloc[-1]
        ends[label] = int(last["oracle_calls"])
        assert ends[label] == step_cost * last["step"], label  # the per-step cost the axis shows
        assert budget <= ends[label] < budget + step_cost, (label, ends[label])
    assert ends == {"gda": budget, "mcn": budget + 1}  # 500 and 91 iterations
