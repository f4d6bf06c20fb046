"""Time per hypergradient: our AID-CG and ITD against torchopt (implicit) and higher (unrolled).

Problem: binary logistic regression with one l2 hyper-parameter per feature,
    g(x, w) = mean_i log(1 + exp(-b_i a_iᵀw)) + ½ Σ_j exp(x_j) w_j²     (train set)
    f(x, w) = mean_i log(1 + exp(-b_i a_iᵀw))                           (validation set)
with w, x ∈ R^10000 (10^4 inner parameters), float64, synthetic Gaussian data (seeded).
Same accuracy: every implementation runs the same T inner GD steps from the same start and the same
K CG iterations (no early stop), and the script checks that the hypergradients agree.

Run on demand (not in CI): ``bash benchmarks/run.sh`` (installs torchopt and higher with --no-deps
next to torch 2.13.0, then runs this script). Prints a Markdown table and writes
``benchmarks/results/hypergradient_libraries.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import bilevel
from bilevel.components.hypergradients import implicit_hypergradient, unrolled_hypergradient
from bilevel.components.inner_solvers import gradient_descent
from bilevel.results import device_description, write_json


def make_problem(dim: int, n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w_true = torch.randn(dim, generator=gen, dtype=torch.float64)
    a_tr = torch.randn(n, dim, generator=gen, dtype=torch.float64) / dim ** 0.5
    a_va = torch.randn(n, dim, generator=gen, dtype=torch.float64) / dim ** 0.5
    b_tr, b_va = torch.sign(a_tr @ w_true), torch.sign(a_va @ w_true)

    def g(x, w):
        return torch.nn.functional.softplus(-b_tr * (a_tr @ w)).mean() + 0.5 * (torch.exp(x) * w * w).sum()

    def f(x, w):
        return torch.nn.functional.softplus(-b_va * (a_va @ w)).mean()

    x0 = torch.full((dim,), -2.0, dtype=torch.float64)
    return bilevel.BilevelProblem(f=f, g=g, x0=x0, y0=torch.zeros(dim, dtype=torch.float64), name="logreg-l2")


def ours_aid(p, T, K, lr):
    o = bilevel.Oracle(p)
    w = gradient_descent(o, p.x0, p.y0, lr, T)
    return implicit_hypergradient(o, p.x0, w, "cg", K, solver_tol=0.0)[0]


def ours_itd(p, T, K, lr):
    return unrolled_hypergradient(bilevel.Oracle(p), p.x0, p.y0, lr, T)[0]


def torchopt_aid(p, T, K, lr):
    import torchopt

    def optimality(w, x):
        return torch.func.grad(p.g, argnums=1)(x, w)  # differentiable w.r.t. both (torchopt takes VJPs)

    @torchopt.diff.implicit.custom_root(optimality, argnums=1,
                                        solve=torchopt.linear_solve.solve_cg(maxiter=K, rtol=0.0, atol=0.0))
    def solve(w0, x):
        w = w0.detach().clone()
        xd = x.detach()
        with torch.enable_grad():  # torchopt calls the solver under no_grad
            for _ in range(T):
                w.requires_grad_(True)
                w = (w - lr * torch.autograd.grad(p.g(xd, w), w)[0]).detach()
        return w

    x = p.x0.clone().requires_grad_(True)
    w = solve(p.y0.clone(), x)
    return torch.autograd.grad(p.f(x, w), x)[0]


def higher_itd(p, T, K, lr):
    import higher

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(p.y0.clone())

    model = Inner()
    x = p.x0.clone().requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=True) as (fmodel, diffopt):
        for _ in range(T):
            diffopt.step(p.g(x, fmodel.w))
        return torch.autograd.grad(p.f(x, fmodel.w), x)[0]


def timeit(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--inner-steps", type=int, default=50)
    ap.add_argument("--cg-steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "hypergradient_libraries.json"))
    args = ap.parse_args(argv)
    p = make_problem(args.dim, args.n)
    lr = 1.0  # smoothness of g ≤ ‖A‖²/(4n) + max exp(x) ≈ 0.3 + 0.14
    T, K = args.inner_steps, args.cg_steps
    res = {}
    for name, fn in [("ours AID-CG", ours_aid), ("torchopt implicit (CG)", torchopt_aid),
                     ("ours ITD", ours_itd), ("higher unrolled", higher_itd)]:
        t, h = timeit(lambda fn=fn: fn(p, T, K, lr), args.reps)
        res[name] = {"seconds": t, "hypergradient": h}
    agree_aid = float((res["ours AID-CG"]["hypergradient"] - res["torchopt implicit (CG)"]["hypergradient"]).norm()
                      / res["torchopt implicit (CG)"]["hypergradient"].norm())
    agree_itd = float((res["ours ITD"]["hypergradient"] - res["higher unrolled"]["hypergradient"]).norm()
                      / res["higher unrolled"]["hypergradient"].norm())
    ratios = {"aid: ours / torchopt": res["ours AID-CG"]["seconds"] / res["torchopt implicit (CG)"]["seconds"],
              "itd: ours / higher": res["ours ITD"]["seconds"] / res["higher unrolled"]["seconds"]}
    print(f"dim={args.dim} n={args.n} T={T} K={K} reps={args.reps} (median seconds per hypergradient)")
    print("| implementation | seconds |\n|---|---|")
    for name, r in res.items():
        print(f"| {name} | {r['seconds']:.4f} |")
    print(f"relative difference of hypergradients: AID {agree_aid:.1e}, ITD {agree_itd:.1e}")
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.2f}")
    write_json({"args": vars(args), "seconds": {k: r["seconds"] for k, r in res.items()}, "ratios": ratios,
                "agreement": {"aid": agree_aid, "itd": agree_itd}, "device": device_description("cpu"),
                "torch": torch.__version__}, args.out)


if __name__ == "__main__":
    main()
