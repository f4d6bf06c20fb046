"""Our ZOBA, HF-ZOBA, ZMDSBA and SOBA against the ZOBA authors' own code on their stored p = d = 20 quadratic
(bilevel.experiments.zoba_reference; the full side-by-side: benchmarks/zoba_reference.py).

At equal iterations and parameters our median over 3 seeds lies in the authors' seed range widened by
TOLERANCE (×/÷ 1.5); the tests that isolate a cause show that the difference disappears with the
authors' choice and reappears with ours."""

import statistics

import pytest

import bilevel
from bilevel.experiments import zoba_reference as ref

TOLERANCE = 1.5  # factor on the authors' seed range (min/1.5, max·1.5): our seeds cannot be their draws
P20 = "p20_d20"


@pytest.fixture(scope="module")
def traces():
    return ref.load_traces()


def _median(runs, iteration):
    return statistics.median(ref.ours_at(runs, iteration))


def test_the_stored_problem_reproduces_the_traces_first_row(traces):
    problem = bilevel.problems.make("quadratic_file", path=str(ref.problem_path(P20)))
    grad = problem.closed_form.hypergradient(problem.x0)
    first = traces[(traces.problem == P20) & (traces.iteration == 0)]["grad_norm2"].unique()
    assert len(first) == 1
    assert float(grad @ grad) == pytest.approx(first[0], rel=1e-12)
    assert float(grad @ grad) == pytest.approx(19.723043173969, rel=1e-12)


@pytest.mark.parametrize(("config", "method", "iteration"), [("A", "zoba", 300), ("B", "hf-zoba", 200)])
def test_zoba_and_hf_zoba_agree_with_the_authors(traces, config, method, iteration):
    case = ref.Case(config, P20, method)
    runs = ref.run_ours(traces, case, "authors", iteration)
    authors = ref.authors_values(traces, case, iteration)
    assert len(authors) == 3
    assert ref.within(ref.ours_at(runs, iteration), authors, TOLERANCE), (ref.ours_at(runs, iteration), authors)


def test_zmdsba_agrees_in_the_authors_form_and_the_outer_schedule_is_the_difference(traces):
    """Config B, iteration 100: the authors' ZMDSBA ≈ 11; ours in the authors' form agrees; ours in the
    consistent form (constant outer step) is several times lower, and the authors' form with ONLY the outer step made
    constant is as low: the decay step/√(k+1) is the cause (v's re-initialisation and the cross form barely
    matter at γ0 = 5e-4)."""
    case, iteration = ref.Case("B", P20, "zmdsba"), 100
    authors = ref.authors_values(traces, case, iteration)
    ours = ref.run_ours(traces, case, "authors", iteration)
    consistent = ref.run_ours(traces, case, "artifact", iteration)
    assert ref.within(ref.ours_at(ours, iteration), authors, TOLERANCE), (ref.ours_at(ours, iteration), authors)
    assert _median(consistent, iteration) < min(authors) / 3
    name, params = ref.method_params(traces, case, "authors")
    problem = bilevel.problems.make("quadratic_file", path=str(ref.problem_path(P20)))
    constant = [float(bilevel.run(bilevel.methods.make(name, **{**params, "outer_schedule_exponent": 0.0}), problem,
                                  max_iters=iteration, eval_every=iteration, seed=s, sampler="blocks")
                      .trace["hypergrad_norm2"].iloc[-1]) for s in (0, 1, 2)]
    assert statistics.median(constant) == pytest.approx(_median(consistent, iteration), rel=0.25)


def test_soba_the_sampler_is_the_difference(traces):
    """Config B, iteration 5000, one seed per sampler: i.i.d. mini-batches leave ‖∇Ψ‖² > 5x higher than the
    authors' reshuffled blocks, whose value is at most the authors' range (ours is ~3x below it here and within
    it at iteration 15,000: benchmarks/zoba_reference.py)."""
    case, iteration = ref.Case("B", P20, "soba"), 5000
    authors = ref.authors_values(traces, case, iteration)
    blocks = ref.run_ours(traces, case, "authors", iteration, seeds=(0,))
    iid = ref.run_ours(traces, case, "artifact", iteration, seeds=(0,))
    assert _median(iid, iteration) > 5 * _median(blocks, iteration)
    assert _median(iid, iteration) > max(authors) * TOLERANCE
    assert _median(blocks, iteration) <= max(authors) * TOLERANCE


def test_the_authors_parameters_map_onto_ours(traces):
    assert ref.method_params(traces, ref.Case("B", P20, "zmdsba"), "artifact") == \
        ("zmdsba", {"outer_lr": 0.03, "inner_lr": 5e-4, "solver_lr": 5e-4})
    name, params = ref.method_params(traces, ref.Case("B", P20, "zmdsba"), "authors")
    assert params["outer_schedule_exponent"] == 0.5 and params["v_reinit"] and params["cross_scale"] == 2
    assert ref.method_params(traces, ref.Case("A", P20, "zoba"), "authors") == ("zoba", {})
    with pytest.raises(ValueError, match="form"):
        ref.method_params(traces, ref.Case("A", P20, "zoba"), "mine")
    with pytest.raises(ValueError, match="no reference trace"):
        ref.method_params(traces, ref.Case("C", P20, "zoba"), "authors")
