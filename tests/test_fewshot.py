"""Few-shot meta-learning: episode sampler, backbones, the bilevel problem, ITD's split reverse pass,
checkpoints (a killed run resumes), and meta-training that raises held-out accuracy."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bilevel import data, methods, problems
from bilevel.networks import Conv4, ResNet12, batch_norm
from bilevel.oracle import Oracle
from bilevel.problems.fewshot import EpisodeSampler, class_splits
from bilevel.run import Checkpoint, run

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(dataset="fc100", backbone="conv4", hidden=8, side=28, in_channels=1, n_way=5, k_shot=2, n_query=3,
             meta_batch=2, eval_tasks=10, eval_steps=50)


@pytest.fixture(autouse=True, scope="module")
def _glyphs_stand_in():
    """No seed directory: FC100 is absent, so the synthetic glyphs (always available) stand in."""
    data.configure(seed_dirs=[], stand_ins={"fc100": ["glyphs"]})
    yield
    data.configure()


def test_class_splits_are_disjoint_and_cover_every_class():
    ds = data.load("glyphs")
    parts = class_splits(ds, (0.6, 0.2, 0.2), split_seed=3)
    sets = {s: set(torch.unique(y).tolist()) for s, (_, y) in parts.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"] and not sets["val"] & sets["test"]
    assert len(sets["train"] | sets["val"] | sets["test"]) == len(torch.unique(ds["all"]["y"]))
    assert abs(len(sets["train"]) - 0.6 * 148) <= 1 and abs(len(sets["test"]) - 0.2 * 148) <= 1
    other = class_splits(ds, (0.6, 0.2, 0.2), split_seed=4)
    assert set(torch.unique(other["test"][1]).tolist()) != sets["test"]  # the split seed chooses the classes


class _Splits:
    """A stand-in for :class:`bilevel.data.Dataset`: ``splits`` and item access."""

    def __init__(self, splits):
        self.splits = splits

    def __getitem__(self, split):
        return self.splits[split]


def test_official_splits_are_kept_and_grouped_omniglot_layout_is_flattened():
    flat = {s: {"x": torch.zeros(6, 3, 4, 4, dtype=torch.uint8), "y": torch.tensor([0, 0, 1, 1, 2, 2]) + 10 * i}
            for i, s in enumerate(("train", "val", "test"))}
    parts = class_splits(_Splits(flat))
    assert [sorted(torch.unique(parts[s][1]).tolist()) for s in ("train", "val", "test")] == \
        [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
    grouped = {"background": {"x": torch.ones(10, 4, 7, 7, dtype=torch.uint8), "y": torch.arange(10)}}  # Omniglot
    parts = class_splits(_Splits(grouped), (0.6, 0.2, 0.2), split_seed=0)
    assert sum(len(parts[s][0]) for s in parts) == 40 and parts["train"][0].shape[1:] == (1, 7, 7)
    assert [len(torch.unique(parts[s][1])) for s in ("train", "val", "test")] == [6, 2, 2]
    for s in parts:  # the 4 drawings of a character keep its label
        assert all(int((parts[s][1] == c).sum()) == 4 for c in torch.unique(parts[s][1]))


def test_episodes_have_exact_shapes_labels_and_are_reproducible():
    images = torch.arange(12 * 10, dtype=torch.float32).reshape(120, 1, 1, 1).expand(120, 1, 4, 4).contiguous()
    labels = torch.arange(12).repeat_interleave(10)
    sampler = EpisodeSampler(images, labels, n_way=5, k_shot=3, n_query=4, seed=7)
    ep = sampler.episode(11)
    assert ep.support_x.shape == (15, 1, 4, 4) and ep.query_x.shape == (20, 1, 4, 4)
    assert ep.support_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert ep.query_y.tolist() == sum(([c] * 4 for c in range(5)), [])
    # every image belongs to its label's class, support and query images are distinct
    ids_s = ep.support_x[:, 0, 0, 0].long()
    ids_q = ep.query_x[:, 0, 0, 0].long()
    assert torch.equal(labels[ids_s], ep.classes[ep.support_y]) and torch.equal(labels[ids_q], ep.classes[ep.query_y])
    assert len(set(ids_s.tolist()) | set(ids_q.tolist())) == 35 and len(set(ep.classes.tolist())) == 5
    again = EpisodeSampler(images, labels, 5, 3, 4, seed=7).episode(11)
    assert torch.equal(again.support_x, ep.support_x) and torch.equal(again.query_x, ep.query_x)
    assert not torch.equal(EpisodeSampler(images, labels, 5, 3, 4, seed=8).episode(11).support_x, ep.support_x)
    batch = sampler.batch([0, 1, 2])
    assert batch.support_x.shape == (45, 1, 4, 4) and batch.support_y.shape == (3, 15)
    assert torch.equal(batch.query_x[20:40], sampler.episode(1).query_x)


def test_episode_sampler_rejects_impossible_tasks():
    labels = torch.arange(4).repeat_interleave(5)
    with pytest.raises(ValueError, match="fewer than n_way"):
        EpisodeSampler(torch.zeros(20, 1, 2, 2), labels, n_way=5, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match="fewer than k_shot"):
        EpisodeSampler(torch.zeros(20, 1, 2, 2), labels, n_way=3, k_shot=3, n_query=3)


def test_conv4_equals_torch_layers_with_per_task_batch_norm():
    net = Conv4(hidden=6, layers=2, in_channels=3, side=8)
    theta = net.init(torch.Generator().manual_seed(0), dtype=torch.float64)
    theta = theta + 0.1 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    images = torch.randn(10, 3, 8, 8, dtype=torch.float64)
    p = net.unflatten(theta)

    def reference(a):
        for i in range(2):
            a = F.conv2d(a, p[f"conv{i}.w"], p[f"conv{i}.b"], padding=1)
            a = F.batch_norm(a, None, None, p[f"bn{i}.w"], p[f"bn{i}.b"], training=True, eps=1e-5)
            a = F.max_pool2d(torch.relu(a), 2)
        return a.flatten(1)

    out = net(theta, images, groups=2)  # two tasks of five images, each normalised on its own
    assert out.shape == (10, net.feature_dim) and net.feature_dim == 6 * 2 * 2
    assert torch.allclose(out, torch.cat([reference(images[:5]), reference(images[5:])]), atol=1e-10)
    h = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    w, b = torch.rand(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    assert torch.allclose(batch_norm(h, w, b, 1), F.batch_norm(h, None, None, w, b, training=True), atol=1e-10)


def test_resnet12_shapes_and_gradients():
    net = ResNet12(channels=(4, 6, 8, 10), in_channels=3, side=16)
    theta = net.init(torch.Generator().manual_seed(0))
    assert theta.shape == (net.size,) and net.feature_dim == 10
    images = torch.randn(6, 3, 16, 16)
    xx = theta.clone().requires_grad_(True)
    out = net(xx, images, groups=3)
    assert out.shape == (6, 10) and torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.square().sum(), xx)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def _problem(**kw):
    return problems.make("few_shot", **{**SMALL, **kw}, seed=0, dtype=torch.float64)


def test_few_shot_problem_levels_and_feature_cache():
    prob = _problem()
    assert prob.info["dataset_label"] == "STAND-IN: glyphs for fc100" and prob.info["stand_in_for"] == "fc100"
    feat = prob.info["feature_dim"]
    assert prob.dim_inner == 2 * 5 * (feat + 1)
    prob.resample(3)
    gen = torch.Generator().manual_seed(2)
    x = prob.x0 + 0.05 * torch.randn(prob.x0.shape, generator=gen, dtype=torch.float64)
    y = torch.randn(prob.y0.shape, generator=gen, dtype=torch.float64)
    oracle = Oracle(prob)
    cached = oracle.grad_y("g", x, y)  # x not differentiated: features memoised
    yy = y.clone().requires_grad_(True)
    xx = x.clone().requires_grad_(True)  # differentiated: features recomputed with their graph
    fresh = torch.autograd.grad(prob.g(xx, yy), yy)[0]
    assert torch.allclose(cached, fresh, atol=1e-12)
    # the sum over tasks: each head's gradient is its own task's CE gradient plus reg * W
    net, sampler = prob.info["network"], prob.info["samplers"]["train"]
    ep = sampler.episode(3 * 2 + 1)  # task 1 of meta-batch 3
    w1 = y.reshape(2, 5, feat + 1)[1].clone().requires_grad_(True)
    phi = net(x, ep.support_x.to(torch.float64), groups=1)
    loss = F.cross_entropy(phi @ w1[:, :-1].T + w1[:, -1], ep.support_y) + 0.5 * 0.5 * w1.square().sum()
    own = torch.autograd.grad(loss, w1)[0]
    assert torch.allclose(cached.reshape(2, 5, feat + 1)[1], own, atol=1e-10)
    # f is the mean over tasks of the query cross-entropy; at zero heads it is log N
    assert abs(float(prob.f(x, torch.zeros_like(y))) - math.log(5.0)) < 1e-12


def test_held_out_metrics_judge_the_backbone_and_the_meta_batch_one_is_a_diagnostic_of_the_heads():
    """test_accuracy / test_loss fit their own heads (a function of x alone); the meta-batch accuracy reads the
    method's heads y and is named as the iterate's diagnostic."""
    prob = _problem()
    prob.resample(0)
    metrics = prob.info["metrics"]
    assert "meta_train_accuracy" not in metrics
    x = prob.x0 + 0.01 * torch.randn(prob.x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.randn(prob.y0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    at_zero = [metrics[k](prob, x, torch.zeros_like(prob.y0)) for k in ("test_accuracy", "test_loss")]
    assert [metrics[k](prob, x.clone(), y) for k in ("test_accuracy", "test_loss")] == at_zero  # recomputed, same
    assert metrics["iterate_meta_train_accuracy"](prob, x, torch.zeros_like(prob.y0)) == pytest.approx(1 / 5)  # ties: class 0


def test_itd_split_reverse_equals_joint_and_cross_sum_equals_products():
    prob = _problem()
    prob.resample(0)
    y0 = 0.1 * torch.randn(prob.y0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    estimates = {}
    for reverse in ("joint", "split"):
        method = methods.make("itd", inner_steps=4, inner_lr=0.1, reverse=reverse)
        oracle = Oracle(prob)
        estimates[reverse], _ = method.hypergradient(oracle, prob.x0, y0, method.init(oracle, prob.x0, y0, 0))
    assert torch.allclose(estimates["split"], estimates["joint"], rtol=1e-9, atol=1e-12)
    oracle = Oracle(prob)
    ys = torch.randn(3, prob.dim_inner, dtype=torch.float64)
    vs = torch.randn(3, prob.dim_inner, dtype=torch.float64)
    total = oracle.cross_xy_sum("g", prob.x0, ys, vs)
    assert torch.allclose(total, sum(oracle.cross_xy("g", prob.x0, ys[t], vs[t]) for t in range(3)), atol=1e-10)
    assert oracle.counts["g_hvp"] == 6


def test_meta_training_raises_held_out_accuracy():
    prob = problems.make("few_shot", **{**SMALL, "hidden": 16, "meta_batch": 4, "k_shot": 5, "n_query": 5,
                                        "eval_tasks": 30}, seed=1)
    method = methods.make("aid", inner_steps=10, inner_lr=0.1, solver="cg", solver_steps=10, outer_optimizer="adam",
                          outer_lr=0.003, warm_start=False)
    result = run(method, prob, max_iters=30, eval_every=30, seed=1)
    acc = result.trace["test_accuracy"].tolist()
    assert acc[-1] > acc[0] + 0.05 and acc[-1] > 0.2 + 0.3, acc  # chance is 0.2


def test_checkpoint_resume_gives_the_uninterrupted_rows(tmp_path):
    prob = _problem()
    method = methods.make("itd", inner_steps=3, inner_lr=0.1, outer_optimizer="adam", outer_lr=0.003,
                          warm_start=False, reverse="split")
    full = run(method, prob, max_iters=6, eval_every=2, seed=4).trace

    class Killed(Exception):
        pass

    class Dies(type(method)):  # a process killed after step 5: the step-4 checkpoint survives
        def step(self, oracle, state):
            if state.k == 5:
                raise Killed
            return super().step(oracle, state)

    dies = Dies(**method.params())
    path = tmp_path / "ckpt.pt"
    with pytest.raises(Killed):
        run(dies, prob, max_iters=6, eval_every=2, seed=4, checkpoint=Checkpoint(path, every=2))
    assert path.exists()
    said = []
    resumed = run(method, prob, max_iters=6, eval_every=2, seed=4, checkpoint=Checkpoint(path, every=2),
                  progress=said.append).trace
    assert any("resumed from" in line and "step 4" in line for line in said)
    assert not path.exists()  # removed once the run completed
    cols = [c for c in full.columns if c != "time"]
    assert full[cols].equals(resumed[cols])


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    prob = _problem()
    path = tmp_path / "ckpt.pt"
    a = methods.make("itd", inner_steps=2, inner_lr=0.1, reverse="split")
    b = methods.make("itd", inner_steps=3, inner_lr=0.1, reverse="split")
    torch.save({"key": "someone else"}, path)
    said = []
    trace = run(b, prob, max_iters=2, seed=0, checkpoint=Checkpoint(path, every=1), progress=said.append).trace
    assert any("another run; discarded" in line for line in said) and list(trace["step"]) == [0, 1, 2]
    del a


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from bilevel.experiments.pipeline import execute_job
    from bilevel.methods.itd import ITD
    if {slow}:  # a slow job, so that the test can kill it after its first checkpoint
        step = ITD.step
        def slow_step(self, oracle, state):
            time.sleep(0.4)
            return step(self, oracle, state)
        ITD.step = slow_step
    config = {config!r}
    execute_job(config, "fsba_fig4_meta", "itd", 1, {out!r}, progress=True)
""")


def _job_config(results: Path) -> dict:
    section = {
        "device": "cpu",
        "problem": {"name": "few_shot", "params": {k: v for k, v in SMALL.items() if k != "dataset"}},
        "cases": {"fc100": {"dataset": "fc100"}},
        "seeds": [1],
        "methods": {"itd": {"method": "itd", "params": {"inner_steps": 3, "inner_lr": 0.1, "reverse": "split",
                                                        "outer_optimizer": "adam", "outer_lr": 0.003}}},
        "optimization": {"max_iters": 8, "eval_every": 2, "checkpoint_every": 2},
    }
    return {"results_dir": str(results), "device": "cpu", "experiments": {"fsba_fig4_meta": section},
            "data": {"seed_dirs": [], "stand_ins": {"fc100": ["glyphs"]}}}


def test_a_killed_job_resumes_from_its_last_checkpoint(tmp_path):
    """The workflow's job function (rule run_job, a GPU experiment) killed by SIGKILL mid-run, then re-run: it resumes from
    its last checkpoint and writes the rows of an uninterrupted job."""
    from bilevel.experiments.pipeline import checkpoint_dir

    out = tmp_path / "resumed" / "fsba_fig4_meta" / "itd" / "seed1.csv"
    ckpt = checkpoint_dir(out) / "fc100.pt"
    config = _job_config(tmp_path / "resumed")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def script(slow, target, cfg):
        return KILL_SCRIPT.format(src=str(ROOT / "src"), slow=slow, config=cfg, out=str(target))

    proc = subprocess.Popen([sys.executable, "-c", script(True, out, config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    assert ckpt.exists(), "the job wrote no checkpoint"
    proc.send_signal(signal.SIGKILL)  # as a cluster's time limit or a pre-emption would
    proc.wait()
    assert not out.exists()
    step = torch.load(ckpt, weights_only=True)["k"]
    assert 2 <= step < 8
    resumed = subprocess.run([sys.executable, "-c", script(False, out, config)], env=env, capture_output=True,
                             text=True, check=True)
    assert f"resumed from {ckpt} at step {step}" in resumed.stderr + resumed.stdout
    assert not checkpoint_dir(out).exists()  # removed once the job completed
    reference = tmp_path / "reference" / "fsba_fig4_meta" / "itd" / "seed1.csv"
    subprocess.run([sys.executable, "-c", script(False, reference, _job_config(tmp_path / "reference"))], env=env,
                   capture_output=True, text=True, check=True)
    import pandas as pd

    a, b = pd.read_csv(out), pd.read_csv(reference)
    cols = [c for c in a.columns if c != "time"]
    assert len(a) == len(b) and a[cols].equals(b[cols])


def test_a_checkpoint_of_another_configuration_is_discarded_not_resumed(tmp_path):
    """Kill a job after its first checkpoint, change a problem parameter that changes neither the problem's
    name nor its sizes (n_query), re-run: the stale checkpoint is discarded (the log names n_query) and the
    rows are exactly those of a clean run with the new value."""
    from bilevel.experiments.pipeline import checkpoint_dir

    out = tmp_path / "edited" / "fsba_fig4_meta" / "itd" / "seed1.csv"
    ckpt = checkpoint_dir(out) / "fc100.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def config(results, n_query):
        cfg = _job_config(results)
        cfg["experiments"]["fsba_fig4_meta"]["problem"]["params"]["n_query"] = n_query
        return cfg

    def script(slow, target, cfg):
        return KILL_SCRIPT.format(src=str(ROOT / "src"), slow=slow, config=cfg, out=str(target))

    proc = subprocess.Popen([sys.executable, "-c", script(True, out, config(tmp_path / "edited", 3))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.05)
    assert ckpt.exists(), "the job wrote no checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run([sys.executable, "-c", script(False, out, config(tmp_path / "edited", 4))], env=env,
                           capture_output=True, text=True, check=True)
    said = rerun.stderr + rerun.stdout
    assert "resumed from" not in said
    assert "discarded, starting afresh" in said and "n_query: 3 -> 4" in said, said[-2000:]
    reference = tmp_path / "clean" / "fsba_fig4_meta" / "itd" / "seed1.csv"
    subprocess.run([sys.executable, "-c", script(False, reference, config(tmp_path / "clean", 4))], env=env,
                   capture_output=True, text=True, check=True)
    import pandas as pd

    a, b = pd.read_csv(out), pd.read_csv(reference)
    cols = [c for c in a.columns if c != "time"]
    assert len(a) == len(b) and a[cols].equals(b[cols])


def test_a_registered_problem_records_its_construction():
    """What the resume key covers: every resolved parameter (defaults included) and the data's checksums."""
    prob = _problem()
    construction = prob.info["construction"]
    assert construction["problem"] == "few_shot"
    assert construction["params"]["n_query"] == SMALL["n_query"]
    assert construction["params"]["class_fractions"] == [0.6, 0.2, 0.2], "a default is recorded too"
    assert construction["params"]["dtype"] == "torch.float64" and construction["params"]["seed"] == 0
    assert construction["data"] and all(len(h) == 64 for d in construction["data"] for h in d["files"])
