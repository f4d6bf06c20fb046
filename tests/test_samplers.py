"""The mini-batch laws of Oracle.sample (bilevel.oracle.SAMPLERS) and ZMDSBA's outer schedule."""

import pytest
import torch

import bilevel
from bilevel import Oracle
from bilevel.run import Checkpoint, run


def _quadratic(n=30):
    return bilevel.problems.make("quadratic", dim_inner=4, dim_outer=3, n_samples_inner=n, n_samples_outer=n, seed=0)


def _epoch(oracle, size, batches, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [oracle.sample("g", size, gen) for _ in range(batches)]


def test_epoch_sampler_draws_every_sample_once_per_epoch():
    draws = _epoch(Oracle(_quadratic(30), "epoch"), 5, 12)  # two epochs of 6 batches
    for epoch in (draws[:6], draws[6:]):
        assert sorted(torch.cat(epoch).tolist()) == list(range(30))
    assert not torch.equal(torch.cat(draws[:6]), torch.cat(draws[6:]))  # reshuffled


def test_epoch_sampler_skips_a_short_remainder():
    draws = _epoch(Oracle(_quadratic(30), "epoch"), 7, 8)  # 4 batches of 7 per epoch, 2 samples skipped
    for epoch in (draws[:4], draws[4:]):
        flat = torch.cat(epoch).tolist()
        assert len(set(flat)) == 28 and len(flat) == 28


def test_blocks_sampler_visits_fixed_consecutive_blocks_in_a_reshuffled_order():
    draws = _epoch(Oracle(_quadratic(30), "blocks"), 7, 8)  # blocks [0, 7), [7, 14), [14, 21), [21, 28)
    for batch in draws:
        start = int(batch[0])
        assert start % 7 == 0 and batch.tolist() == list(range(start, start + 7))
    for epoch in (draws[:4], draws[4:]):
        assert sorted(int(b[0]) for b in epoch) == [0, 7, 14, 21]


def test_samplers_keep_one_stream_per_level_and_batch_size():
    oracle = Oracle(_quadratic(30), "epoch")
    gen = torch.Generator().manual_seed(0)
    small = [oracle.sample("g", 1, gen) for _ in range(30)]
    big = [oracle.sample("g", 10, gen) for _ in range(3)]
    outer = [oracle.sample("f", 10, gen) for _ in range(3)]
    assert sorted(torch.cat(small).tolist()) == list(range(30))
    assert sorted(torch.cat(big).tolist()) == list(range(30)) == sorted(torch.cat(outer).tolist())


def test_replacement_is_the_default_and_bad_samplers_are_refused():
    assert Oracle(_quadratic()).sampler == "replacement"
    with pytest.raises(ValueError, match="unknown sampler 'shuffle'"):
        Oracle(_quadratic(), "shuffle")
    with pytest.raises(ValueError, match="without replacement"):
        _epoch(Oracle(_quadratic(30), "epoch"), 31, 1)


@pytest.mark.parametrize("sampler", ["epoch", "blocks"])
def test_same_seed_same_batches_and_a_resumed_run_continues_the_epoch(sampler, tmp_path):
    """SOBA with batches of 8 from 30 samples: a checkpoint mid-epoch resumes the sampler's cursor."""
    method, problem = bilevel.methods.make("soba", batch_size=8), _quadratic(30)
    full = run(method, problem, max_iters=9, eval_every=1, seed=3, sampler=sampler)
    again = run(method, problem, max_iters=9, eval_every=1, seed=3, sampler=sampler)
    assert torch.equal(full.x, again.x)
    iid = run(method, problem, max_iters=9, eval_every=1, seed=3)
    assert not torch.equal(full.x, iid.x)

    class Stop(Exception):
        pass

    def stop_at_5(line):
        if " step 5 " in line:
            raise Stop

    checkpoint = Checkpoint(tmp_path / "run.pt", every=1)
    with pytest.raises(Stop):
        run(method, problem, max_iters=9, eval_every=1, seed=3, sampler=sampler, checkpoint=checkpoint,
            progress=stop_at_5)
    resumed = run(method, problem, max_iters=9, eval_every=1, seed=3, sampler=sampler, checkpoint=checkpoint)
    assert torch.equal(full.x, resumed.x) and torch.equal(full.y, resumed.y)
    # a checkpoint of another sampler is not resumed
    with pytest.raises(Stop):
        run(method, problem, max_iters=9, eval_every=1, seed=3, sampler=sampler, checkpoint=checkpoint,
            progress=stop_at_5)
    said = []
    other = run(method, problem, max_iters=9, eval_every=1, seed=3, checkpoint=checkpoint, progress=said.append)
    assert not any("resumed" in line for line in said) and torch.equal(other.x, iid.x)


def test_zmdsba_outer_step_decays_with_its_exponent():
    """x_{k+1} = x_k − outer_lr/(k+1)^e · D_x, D_x the step's own estimate (state.hypergradient)."""
    problem = _quadratic(30)
    for exponent in (0.0, 0.5):
        method = bilevel.methods.make("zmdsba", outer_lr=0.1, outer_schedule_exponent=exponent, inner_steps=2,
                                      outer_samples=5)
        oracle = Oracle(problem)
        state = method.init(oracle, problem.x0, problem.y0, 0)
        for k in range(3):
            before = state.x.clone()
            state = method.step(oracle, state)
            torch.testing.assert_close(state.x, before - 0.1 / (k + 1) ** exponent * state.hypergradient[1])


def test_zmdsba_as_coded_cross_product_needs_equal_dimensions():
    method = bilevel.methods.make("zmdsba", cross_product="as-coded")
    problem = _quadratic(30)  # p = 4, d = 3
    with pytest.raises(ValueError, match="dim_inner = dim_outer"):
        method.init(Oracle(problem), problem.x0, problem.y0, 0)
    with pytest.raises(ValueError, match="cross_product"):
        bilevel.methods.make("zmdsba", cross_product="transposed")


def test_the_optimization_sections_sampler_reaches_every_run():
    from bilevel.experiments.jobs import optimization_run

    cfg = {"problem": {"name": "quadratic", "params": {"dim_inner": 4, "dim_outer": 3, "n_samples_inner": 30,
                                                       "n_samples_outer": 30, "seed": 0}},
           "methods": {"soba": {"method": "soba", "params": {"batch_size": 8}}},
           "optimization": {"max_iters": 6, "eval_every": 3}}
    iid = optimization_run("e", cfg, "soba", seed=1)
    blocks = optimization_run("e", {**cfg, "optimization": {**cfg["optimization"], "sampler": "blocks"}}, "soba", seed=1)
    explicit = optimization_run("e", {**cfg, "optimization": {**cfg["optimization"], "sampler": "replacement"}}, "soba",
                                seed=1)

    def final(rows):
        return float(rows[rows.metric == "hypergrad_norm2"]["value"].iloc[-1])

    assert final(explicit) == final(iid)  # replacement is the default
    assert final(blocks) != pytest.approx(final(iid), rel=1e-6)
