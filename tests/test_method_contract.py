"""The contract every registered method keeps (after benchopt's shared solver test): parametrized over
``bilevel.methods.available()``, so a new method is covered without touching this file.

Each method runs on one tiny problem of its ``problem_kind`` ("bilevel": a small quadratic, "minimax": the
W-function problem, "online": a small drifting-quadratic stream) with its default parameters and must: take
a few steps with finite iterates; count oracle calls monotonically (and some count grows); give the same
trace for the same seed; resume from a checkpoint exactly (online methods, which the stream runner does not
checkpoint: a copy of the state taken mid-stream continues exactly as the uninterrupted state); round-trip its
parameters; refuse an unknown parameter; refuse a value that violates any limit it declares, naming the
parameter.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from bilevel import methods, problems
from bilevel.methods import ParameterError
from bilevel.online import run_online
from bilevel.oracle import COUNT_KEYS, Oracle
from bilevel.run import Checkpoint, run

NAMES = methods.available()
STEPS = 2
KINDS = ("bilevel", "minimax", "online")
TIME_COLUMNS = ("time", "cumulative_time")


@pytest.fixture(scope="module")
def problem_of():
    """One tiny problem per problem kind."""
    made = {
        "bilevel": problems.make("quadratic", dim_inner=4, dim_outer=3, n_samples_inner=32, n_samples_outer=16,
                                 mu_inner=0.3, seed=3),
        "minimax": problems.make("minimax_w", init=1),
        "online": problems.make("online_quadratic", dim=2, sigma=0.1),
    }
    return made.__getitem__


def _run(method, problem, seed=1, **kwargs):
    if method.problem_kind == "online":
        return run_online(method, problem, STEPS, seed=seed, eval_every=1)
    return run(method, problem, max_iters=STEPS, eval_every=1, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def reference(problem_of):
    """The default-parameter run of each method (seed 1), computed once and shared by the tests."""
    memo = {}

    def get(name):
        if name not in memo:
            method = methods.make(name)
            memo[name] = _run(method, problem_of(method.problem_kind))
        return memo[name]

    return get


def _without_times(trace):
    return trace.drop(columns=[c for c in TIME_COLUMNS if c in trace.columns])


def _assert_same_state(a, b):
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.k == b.k
    assert set(a.aux) == set(b.aux)
    for key, value in a.aux.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b.aux[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_steps_are_finite_counted_and_reproducible(name, problem_of, reference):
    method = methods.make(name)
    assert method.problem_kind in KINDS
    result = reference(name)
    assert result.status == "completed" and len(result.trace) >= 2
    assert bool(torch.isfinite(result.x).all() and torch.isfinite(result.y).all())
    counts = result.trace[list(COUNT_KEYS)]
    assert (counts.diff().dropna() >= 0).all().all(), "oracle counts decreased"
    assert counts.iloc[-1].sum() > counts.iloc[0].sum(), "no oracle call was counted"
    assert result.counts == {k: int(counts.iloc[-1][k]) for k in COUNT_KEYS}
    again = _run(methods.make(name), problem_of(method.problem_kind))
    assert _without_times(result.trace).equals(_without_times(again.trace))
    assert torch.equal(result.x, again.x) and torch.equal(result.y, again.y)


class _Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    def say(line: str) -> None:
        if f" step {step} " in line:
            raise _Interrupt
    return say


@pytest.mark.parametrize("name", NAMES)
def test_resuming_equals_the_uninterrupted_run(name, problem_of, reference, tmp_path):
    method = methods.make(name)
    problem = problem_of(method.problem_kind)
    if method.problem_kind == "online":
        _check_online_continuation(method, problem)
        return
    full = reference(name)
    checkpoint = Checkpoint(tmp_path / "run.pt", every=1)
    with pytest.raises(_Interrupt):  # killed while evaluating the last step: the previous step's checkpoint is on disk
        _run(method, problem, checkpoint=checkpoint, progress=_interrupt_at(STEPS))
    assert checkpoint.path.exists()
    said = []
    resumed = _run(method, problem, checkpoint=checkpoint, progress=said.append)
    assert any("resumed from" in line for line in said), said
    assert _without_times(full.trace).equals(_without_times(resumed.trace))
    _assert_same_state(full.state, resumed.state)
    assert not checkpoint.path.exists()


def _check_online_continuation(method, stream, rounds=STEPS + 2, cut=2, seed=1):
    """The state is the whole memory of an online method: a deep copy taken after ``cut`` rounds (as a
    saved state would be) continues exactly as the uninterrupted state, and both match the runner."""
    data = torch.Generator().manual_seed(seed + 1)  # as run_online draws the rounds
    rounds_problems = [stream.round(t, data) for t in range(1, rounds + 1)]

    def advance(state, first, last):
        for t in range(first, last + 1):
            window = [Oracle(p) for p in rounds_problems[max(0, t - method.rounds_needed()):t]]
            state = method.step(window, state, stream.project)
        return state

    def start():
        return method.init(None, stream.x0, stream.y0, seed)

    uninterrupted = advance(start(), 1, rounds)
    continued = advance(copy.deepcopy(advance(start(), 1, cut)), cut + 1, rounds)
    _assert_same_state(uninterrupted, continued)
    runner = run_online(method, stream, rounds, seed=seed, eval_every=rounds)
    assert torch.equal(runner.x, uninterrupted.x) and torch.equal(runner.y, uninterrupted.y)


@pytest.mark.parametrize("name", NAMES)
def test_parameters_round_trip_and_unknown_ones_are_refused(name):
    method = methods.make(name)
    params = method.params()
    json.dumps(params)  # plain, recordable values
    assert methods.make(name, **params) == method
    with pytest.raises(ParameterError, match="not_a_parameter"):
        methods.make(name, not_a_parameter=1)


def _interval_violations(spec: str) -> list:
    low, high = (float(part) for part in spec[1:-1].split(","))
    bad = [low - 1.0, high + 1.0, True]
    if spec[0] == "(":
        bad.append(low)
    if spec[-1] == ")":
        bad.append(high)
    return bad


def _violations(cls) -> list[tuple[str, object]]:
    """``(parameter, invalid value)`` for every limit ``cls`` declares."""
    bad = {"positive": [0, -1.0, True], "nonnegative": [-1.0, True], "counts": [-1, 1.5, True],
           "at_least_one": [0, 1.5, True]}
    out = [(p, v) for kind, values in bad.items() for p in getattr(cls, kind) for v in values]
    out += [(p, v) for p, spec in cls.intervals.items() for v in _interval_violations(spec)]
    out += [(p, "not-a-choice") for p in cls.choices]
    limited = {p for p, _ in out}
    out += [(p, None) for p in sorted(limited - set(cls.optional))]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_limit_is_enforced(name):
    cls = methods.get(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    declared = {p for p, _ in _violations(cls)} | set(cls.optional) | set(cls.callables)
    assert declared <= fields, f"limits on unknown parameters: {sorted(declared - fields)}"
    assert set(cls.callables) <= set(cls.choices)
    for pname, value in _violations(cls):
        with pytest.raises(ParameterError) as err:
            cls(**{pname: value})
        message = str(err.value)
        assert message.startswith(f"{name}: ") and f"parameter {pname} " in message, message
    for pname in cls.optional:  # None is a valid value where declared
        cls(**{pname: None})


def test_every_kind_has_a_contract_problem():
    assert {methods.get(n).problem_kind for n in NAMES} <= set(KINDS)


@pytest.mark.parametrize("name", methods.available())
def test_every_numeric_parameter_declares_a_limit(name):
    """A bool is never taken for a number: each numeric hyper-parameter of every method is declared in its
    class's limits, so ``inner_lr: true`` in a config is refused, not run as 1."""
    cls = methods.get(name)
    for f in dataclasses.fields(cls):
        default = f.default
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        with pytest.raises(ParameterError, match=f"parameter {f.name} "):
            methods.make(name, **{f.name: True})
