"""SOGD paper, Figures 2-3 and Tables 2-4: the functional CNN, the attack and loss-tuning streams, sweep grids."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import bilevel
from bilevel import methods
from bilevel.experiments import ConfigError, aggregate, check_config
from bilevel.experiments import get as get_experiment
from bilevel.experiments.config import grid_cells
from bilevel.networks import ConvNet
from bilevel.online import run_online
from bilevel.oracle import Oracle

SMALL_CLASSIFIER = {"hidden": 16, "epochs": 1, "rows": 500, "seed": 0}


@pytest.fixture(autouse=True, scope="module")
def mnist_or_its_stand_in():
    """As the workflow's default config: official MNIST where cached, else the labelled stand-in mnist5k."""
    from bilevel import data

    data.configure(stand_ins={"mnist": "mnist5k"})
    yield
    data.configure()


# ------------------------------------------------------------------------------------------------ ConvNet

def test_convnet_matches_torch_modules():
    """The flat-vector CNN equals the same layers built from torch.nn (conv, ReLU, max-pool, batch-stat BN, linear)."""
    net = ConvNet(channels=3, layers=2, classes=4, side=8)
    theta = torch.randn(net.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = net.unflatten(theta)
    assert sum(v.numel() for v in p.values()) == net.size
    images = torch.randn(5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = images.reshape(5, 1, 8, 8)
    for i in range(2):
        conv = torch.nn.Conv2d(1 if i == 0 else 3, 3, 3, padding=1).double()
        bn = torch.nn.BatchNorm2d(3).double().train()
        with torch.no_grad():
            conv.weight.copy_(p[f"conv{i}.w"])
            conv.bias.copy_(p[f"conv{i}.b"])
            bn.weight.copy_(p[f"bn{i}.w"])
            bn.bias.copy_(p[f"bn{i}.b"])
        h = bn(torch.nn.functional.max_pool2d(torch.relu(conv(h)), 2))
    expected = h.flatten(1) @ p["fc.w"].T + p["fc.b"]
    assert torch.allclose(net(theta, images), expected, atol=1e-10)
    # evaluation with the statistics of a reference batch = the reference batch's own training-mode output
    assert torch.allclose(net(theta, images[:2], stats_from=images)[:2], net(theta, images)[:2], atol=1e-10)


def test_convnet_init_and_second_derivatives():
    net = ConvNet(channels=4, layers=4, classes=10)
    theta = net.init(torch.Generator().manual_seed(0), dtype=torch.float64)
    p = net.unflatten(theta)
    assert torch.all(p["fc.w"] == 0) and torch.all(p["fc.b"] == 0) and torch.all(p["bn0.w"] == 1)
    assert abs(float(p["conv1.w"].std()) - math.sqrt(2 / (4 * 9))) < 0.1
    theta = theta + 0.1 * torch.randn(net.size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    images = torch.randn(6, 784, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(6) % 10

    def loss(t):
        return torch.nn.functional.cross_entropy(net(t, images), labels)

    v = torch.randn(net.size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    hvp = torch.autograd.functional.hvp(loss, theta, v)[1]
    eps = 1e-5
    grad = torch.func.grad(loss)
    fd = (grad(theta + eps * v) - grad(theta - eps * v)) / (2 * eps)
    assert float(torch.linalg.vector_norm(hvp - fd) / torch.linalg.vector_norm(fd)) < 1e-5
    with pytest.raises(ValueError, match="flat parameter vector"):
        net(theta[:-1], images)
    with pytest.raises(ValueError, match="max-pool"):
        ConvNet(layers=6)


# ------------------------------------------------------------------------------------------------ attack stream

@pytest.fixture(scope="module")
def attack_stream():
    return bilevel.problems.make("online_attack", dataset="mnist", resolution=7, stages=3, stage_length=4,
                                 batch_train=5, batch_val=4, n_test=12, n_val_pool=6, classifier=SMALL_CLASSIFIER,
                                 seed=3)


def test_attack_stream_stages_switch_classes_and_pools_are_disjoint(attack_stream):
    stream = attack_stream
    assert stream.info["stages"] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert stream.x0.shape == stream.y0.shape == (49,)
    gen = torch.Generator().manual_seed(0)
    y = torch.zeros(49, dtype=torch.float64)
    for t, stage in ((1, 1), (4, 1), (5, 2), (9, 3), (13, 1)):  # 4 rounds per stage, then the stream starts over
        problem = stream.round(t, gen)
        assert problem.info["stage"] == stage
        assert problem.n_samples == {"f": 4, "g": 5}
        # at y = 0 every attacked image is classified correctly: accuracy 1, margins >= 0
        assert stream.metrics["accuracy_under_attack"](t, stream.x0, y) == 1.0
        assert float(Oracle(problem).value("f", stream.x0, y)) >= 0
    # g = margin loss + ½ Σ e^x δ², δ = ε tanh(y/ε) the applied perturbation: its gradient in x is ½ e^x δ²
    problem = stream.round(2, gen)
    eps = stream.info["epsilon"]
    assert eps == 0.5  # the default budget (A-6: Y = [-5, 5] on pixels normalised to Y)
    x = torch.linspace(-1, 1, 49, dtype=torch.float64)
    y = 0.1 * torch.ones(49, dtype=torch.float64)
    delta = eps * math.tanh(0.1 / eps)
    assert torch.allclose(Oracle(problem).grad_x("g", x, y), 0.5 * torch.exp(x) * delta**2, atol=1e-12)
    assert stream.metrics["perturbation_linf"](1, x, y) == pytest.approx(delta)
    assert stream.metrics["perturbation_l2"](1, x, y) == pytest.approx(delta * 28)  # 784 pixels of δ


@pytest.mark.parametrize("value", [1.0, 1e3, 1e30, 1e300, math.inf])
def test_attack_stream_perturbation_never_exceeds_epsilon(attack_stream, value):
    """‖P(y)‖∞ <= ε for any y (huge and infinite included): the budget is in the problem, for every method."""
    stream, gen = attack_stream, torch.Generator().manual_seed(1)
    eps = stream.info["epsilon"]
    y = value * torch.randn(49, generator=gen, dtype=torch.float64).sign()
    assert stream.metrics["perturbation_linf"](1, stream.x0, y) <= eps
    assert stream.metrics["perturbation_l2"](1, stream.x0, y) <= eps * 28
    problem = stream.round(1, gen)
    assert math.isfinite(float(problem.g(stream.x0, y))) and math.isfinite(float(problem.f(stream.x0, y)))
    if value >= 1e3:  # saturated: the same attack as ε·sign(y)
        assert float(problem.f(stream.x0, y)) == pytest.approx(float(problem.f(stream.x0, 1e3 * y.sign())), abs=1e-9)


def test_attackers_stay_within_the_budget(attack_stream):
    """Every method alike: the recorded ‖P(y_t)‖∞ never exceeds ε, even with a step that throws y far out."""
    eps = attack_stream.info["epsilon"]
    for name, params in (("zo-sogd", {"beta": 10.0, "delta": 10.0, "radius": 10.0, "b_f": 2, "b_g": 2}),
                         ("zo-signsgd", {"lr": 5.0}), ("zo-gd", {"lr": 1e4})):
        result = run_online(methods.make(name, **params), attack_stream, 6, seed=1, eval_every=2)
        linf = result.trace["perturbation_linf"]
        assert (linf <= eps).all() and linf.max() > 0, (name, linf.tolist())


def test_attack_stream_is_reproducible_and_rejects_bad_input():
    kwargs = dict(dataset="mnist", resolution=7, stages=2, stage_length=3, batch_train=3, batch_val=3, n_test=5,
                  n_val_pool=4, classifier=SMALL_CLASSIFIER)
    a, b = (bilevel.problems.make("online_attack", seed=1, **kwargs) for _ in range(2))
    runs = [run_online(methods.make("zo-sogd", b_f=2, b_g=2, beta=0.01, delta=0.01), s, 6, seed=4, eval_every=3)
            for s in (a, b)]
    cols = ["step", "accuracy_under_attack", "perturbation_linf", "attack_loss_test", "function_evals"]
    pd.testing.assert_frame_equal(runs[0].trace[cols], runs[1].trace[cols])
    with pytest.raises(ValueError, match="parameter resolution must be an integer dividing 28"):
        bilevel.problems.make("online_attack", **{**kwargs, "resolution": 5})
    with pytest.raises(ValueError, match=r"parameter stages must be an integer in \[1, 10\]"):
        bilevel.problems.make("online_attack", **{**kwargs, "stages": 11})
    with pytest.raises(ValueError, match="batch_val = 9 exceeds"):
        bilevel.problems.make("online_attack", **{**kwargs, "batch_val": 9})
    with pytest.raises(ValueError, match="stage 1 .* need n_test"):
        bilevel.problems.make("online_attack", **{**kwargs, "n_test": 100000})


def test_zero_order_attackers_lower_accuracy(attack_stream):
    """A few hundred queries per round are enough for every attacker to fool the (weak) classifier somewhat."""
    for name, params in (("zo-sogd", {"beta": 0.01, "delta": 0.01, "radius": 10.0, "b_f": 5, "b_g": 5}),
                         ("zo-gd", {"lr": 0.05})):
        result = run_online(methods.make(name, **params), attack_stream, 12, seed=1, eval_every=4)
        acc = result.trace["accuracy_under_attack"]
        assert result.status == "completed" and acc.min() < 1.0, (name, acc.tolist())
        assert (result.trace["cumulative_time"] == result.trace["time"]).all()


# ------------------------------------------------------------------------------------------------ loss tuning

@pytest.fixture(scope="module")
def tuning_stream():
    return bilevel.problems.make("online_loss_tuning", dataset="mnist", splits=["test"], channels=4, n_max=40,
                                 n_val=6, n_test=6, rounds_per_phase=3, batch_size=16, batch_val=10, seed=2,
                                 dtype=torch.float64)


def test_loss_tuning_phases_follow_the_imbalance_schedule(tuning_stream):
    stream = tuning_stream
    counts = stream.info["phase_counts"]
    assert counts[0] == [math.ceil(40 * 0.4**i) for i in range(10)] and counts[3] == [40] * 10
    assert stream.x0.shape == (20,) and torch.all(stream.x0[:10] == 0) and torch.all(stream.x0[10:] == 1)
    assert stream.y0.shape == (stream.info["network"].size,)
    gen = torch.Generator().manual_seed(0)
    phases = [stream.round(t, gen).info["phase"] for t in range(1, 15)]
    assert phases == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4]  # after the last phase the stream stays in it
    assert stream.metrics["phase"](7, stream.x0, stream.y0) == 3


def test_loss_tuning_losses_are_the_parametric_and_balanced_cross_entropies(tuning_stream):
    """g with Δ = 0, γ = 1 is the plain cross-entropy (+ weight decay); ∇_Δ g = mean(softmax − onehot);
    f does not depend on x; second-order products agree with finite differences."""
    stream = tuning_stream
    problem = stream.round(1, torch.Generator().manual_seed(5))
    oracle = Oracle(problem)
    y = stream.y0 + 0.05 * torch.randn(stream.y0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    gx_g = oracle.grad_x("g", stream.x0, y)
    gx_f = oracle.grad_x("f", stream.x0, y)
    assert torch.all(gx_f == 0)
    assert abs(float(gx_g[:10].sum())) < 1e-12  # Σ_j (softmax_j − onehot_j) = 0 for every sample
    v = torch.randn(stream.y0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    hxy, hyy = oracle.hvp("g", stream.x0, y, dy=v)
    eps = 1e-6
    fd_x = (oracle.grad_x("g", stream.x0, y + eps * v) - oracle.grad_x("g", stream.x0, y - eps * v)) / (2 * eps)
    assert float(torch.linalg.vector_norm(hxy - fd_x) / torch.linalg.vector_norm(fd_x)) < 1e-5


def test_loss_tuning_methods_learn_and_are_reproducible(tuning_stream):
    runs = {}
    for name, params in (("ogd", {"beta": 0.1}), ("sogd", {"alpha": 0.001, "beta": 0.1, "delta": 0.1, "radius": 10.0}),
                         ("oagd", {"alpha": 0.001, "beta": 0.1, "neumann_lr": 0.05, "window_size": 2,
                                   "neumann_steps": 2}),
                         ("sobow", {"alpha": 0.001, "beta": 0.1, "cg_steps": 2, "warm_start": False})):
        runs[name] = run_online(methods.make(name, **params), tuning_stream, 12, seed=1, eval_every=6)
        trace = runs[name].trace
        assert runs[name].status == "completed"
        assert {"balanced_accuracy", "test_accuracy", "phase", "cumulative_time"} <= set(trace.columns)
        assert trace["balanced_accuracy"].between(0, 1).all()
    assert torch.equal(runs["ogd"].x, tuning_stream.x0)  # OGD never tunes the loss
    assert not torch.equal(runs["sogd"].x, tuning_stream.x0)
    again = run_online(methods.make("ogd", beta=0.1), tuning_stream, 12, seed=1, eval_every=6)
    assert torch.equal(again.y, runs["ogd"].y)


def test_loss_tuning_rejects_impossible_counts():
    with pytest.raises(ValueError, match="class 0 .* need n_max"):
        bilevel.problems.make("online_loss_tuning", splits=["test"], n_max=5000, channels=2)
    with pytest.raises(ValueError, match="phase_ratios"):
        bilevel.problems.make("online_loss_tuning", splits=["test"], phase_ratios=(0.4, 1.5), channels=2)


# ------------------------------------------------------------------------------------------------ sweeps

def test_grid_cells_name_and_tie_parameters():
    grid = {"rows": {"params": ["beta", "delta"], "values": [0.1, 0.01]},
            "columns": {"params": ["alpha"], "values": [0.001]}}
    assert grid_cells(grid) == [("beta=delta=0.1, alpha=0.001", {"beta": 0.1, "delta": 0.1, "alpha": 0.001}),
                                ("beta=delta=0.01, alpha=0.001", {"beta": 0.01, "delta": 0.01, "alpha": 0.001})]


SWEEP_CFG = {
    "problem": {"name": "online_attack", "params": {"dataset": "mnist", "resolution": 7, "stages": 2, "stage_length": 3,
                                                    "batch_train": 3, "batch_val": 3, "n_test": 5, "n_val_pool": 4,
                                                    "classifier": SMALL_CLASSIFIER}},
    "seeds": [1, 2],
    "methods": {"table2": {"method": "zo-sogd", "params": {"beta": 0.01, "delta": 0.01, "b_f": 2, "b_g": 2},
                           "grid": {"rows": {"params": ["beta", "delta"], "values": [0.01, 0.1]},
                                    "columns": {"params": ["alpha"], "values": [0.001]}, "reference": "table2"}},
                "table3": {"method": "zo-sogd", "params": {"beta": 0.01, "delta": 0.01, "b_f": 2, "b_g": 2},
                           "grid": {"rows": {"params": ["rho_v"], "values": [0.001, 0.005, 0.01, 0.05]},
                                    "columns": {"params": ["rho_r", "rho_s"], "values": [0.001, 0.005, 0.01, 0.05]},
                                    "reference": "table3"}}},
    "online": {"rounds": 6, "eval_every": 3},
}


def test_sweep_jobs_tables_and_claim():
    check_config({"experiments": {"sogd_sweeps": SWEEP_CFG}})
    experiment = get_experiment("sogd_sweeps")
    rows = pd.concat([experiment.run_job(experiment.name, SWEEP_CFG, label, seed)
                      for label in SWEEP_CFG["methods"] for seed in (1, 2)], ignore_index=True)
    assert set(rows.loc[rows["method"] == "table2", "phase"]) == {"beta=delta=0.01, alpha=0.001",
                                                                 "beta=delta=0.1, alpha=0.001"}
    assert rows.loc[rows["method"] == "table3", "phase"].nunique() == 16
    tables = experiment.tables(rows, SWEEP_CFG)
    assert [len(t["rows"]) for t in tables] == [2, 4]
    # table 3 has the paper's axes: every cell carries the paper's value beside ours; table 2's grid is smaller
    assert "(paper .28±.03)" in tables[1]["rows"][2][2] and "paper" not in tables[0]["rows"][0][1]
    cell = tables[1]["rows"][0][1]
    mean, std = (float(v) for v in cell.split(" (")[0].split(" ± "))
    acc = rows[(rows["method"] == "table3") & (rows["phase"] == "rho_v=0.001, rho_r=rho_s=0.001")
               & (rows["metric"] == "accuracy_under_attack")].groupby("seed")["value"].mean()
    assert mean == pytest.approx(acc.mean(), abs=0.006) and std == pytest.approx(acc.std(ddof=0), abs=0.006)
    verdict = experiment.claims[0].check(aggregate(rows), SWEEP_CFG)
    assert verdict.holds is not None and "table3: stated best (rho_v=0.01, rho_r=rho_s=0.005)" in verdict.measurement


def test_a_grid_cell_with_a_bad_parameter_fails_the_config_check():
    bad = {**SWEEP_CFG, "methods": {"t": {**SWEEP_CFG["methods"]["table2"],
                                          "grid": {"rows": {"params": ["beta"], "values": [-0.1]},
                                                   "columns": {"params": ["alpha"], "values": [0.001]}}}}}
    with pytest.raises(ConfigError, match=r"experiments\.sogd_sweeps\.methods\.t\.grid cell 'beta=-0.1, alpha=0.001'"):
        check_config({"experiments": {"sogd_sweeps": bad}})


def test_attack_and_tuning_claims_evaluate_on_tiny_runs(attack_stream):
    cfg = {"problem": {"name": "online_attack", "params": SWEEP_CFG["problem"]["params"]}, "seeds": [1],
           "methods": {"zo-sogd": {"method": "zo-sogd", "params": {"beta": 0.01, "delta": 0.01, "b_f": 2, "b_g": 2}},
                       "zo-sogd-adam": {"method": "zo-sogd", "params": {"optimizer": "adam", "b_f": 2, "b_g": 2}},
                       "zo-gd": {"method": "zo-gd", "params": {"lr": 0.01}},
                       "zo-conservsgd": {"method": "zo-conservsgd", "params": {"lr": 0.01}}},
           # every round recorded: ZO-SOGD's first round (28 queries) lies within the baselines' 4 x 20
           "online": {"rounds": 4, "eval_every": 1}}
    check_config({"experiments": {"sogd_attack": cfg}})
    experiment = get_experiment("sogd_attack")
    rows = pd.concat([experiment.run_job(experiment.name, cfg, label, 1) for label in cfg["methods"]], ignore_index=True)
    verdicts = {c.id: c.check(aggregate(rows), cfg) for c in experiment.claims}
    assert all(v.holds is not None for v in verdicts.values()), verdicts
    equal = verdicts["sogd_attack/zo-sogd-beats-gd-conservsgd-equal-queries"].measurement
    assert "Q* = 80 queries" in equal and "zo-sogd" in equal and "round 1" in equal, equal
    assert "bound 0.4 = 0.8 ε, ε = 0.5" in verdicts["sogd_attack/linf-bounded"].measurement
    assert np.isfinite(rows.loc[rows["metric"] == "accuracy_under_attack", "value"]).all()
