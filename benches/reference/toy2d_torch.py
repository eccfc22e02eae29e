"""docs/SPEC.md toy2d throughput workload in PyTorch eager (reference for scoresde; never run by CI).

Usage:
  python3 toy2d_torch.py [--threads 1,2] [--train-steps 2000] [--warmup 100] [--sample-steps 200] [--n 10000]

For each thread count k (torch.set_num_threads(k), in-process) prints
  RESULT train_steps_per_s k value      (batch 512: data draw, forward, backward, Adam, EMA)
  RESULT ddpm_evals_per_s k value       (10,000 samples x sample-steps DDPM ancestral steps)
  RESULT em_evals_per_s k value         (10,000 samples x sample-steps reverse-SDE Euler-Maruyama steps)
Workload as ../../docs/SPEC.md: checkerboard data, 34->256->256->256->2 SiLU MLP (PyTorch
default init), sinusoidal embedding (t*1000, 16 frequencies), VP SDE (beta 0.1 -> 20), eps-prediction
DSM with t ~ U(1e-3, 1), Adam 1e-3, EMA 0.999.
"""
import argparse, copy, math, time

import numpy as np
import torch
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--threads", default="1,2")
p.add_argument("--train-steps", type=int, default=2000)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--sample-steps", type=int, default=200)
p.add_argument("--n", type=int, default=10000)
args = p.parse_args()

BMIN, BMAX, EPS_T, N = 0.1, 20.0, 1e-3, 1000
FREQS = torch.exp(-math.log(10000.0) * torch.arange(16, dtype=torch.float32) / 16)


def checkerboard(rng, n):
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + (np.floor(x1) % 2)
    return torch.from_numpy((2 * np.stack([x1, x2], 1)).astype(np.float32))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(34, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(),
                                 nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 2))

    def forward(self, x, t):
        ang = 1000.0 * t[:, None] * FREQS[None, :]
        return self.net(torch.cat([x, torch.sin(ang), torch.cos(ang)], 1))


def int_beta(t):
    return BMIN * t + 0.5 * (BMAX - BMIN) * t * t


def bench(k):
    torch.set_num_threads(k)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Net()
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    ema_p, model_p = list(ema.parameters()), list(model.parameters())

    def step():
        x0 = checkerboard(rng, 512)
        t = torch.rand(512) * (1 - EPS_T) + EPS_T
        z = torch.randn(512, 2)
        ib = int_beta(t)[:, None]
        xt = torch.exp(-0.5 * ib) * x0 + torch.sqrt(-torch.expm1(-ib)) * z
        loss = ((model(xt, t) - z) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_p, model_p, 0.001)
        return loss

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    dt = time.perf_counter() - t0
    print(f"RESULT train_steps_per_s {k} {args.train_steps / dt:.6e}", flush=True)

    betas = np.linspace(BMIN / N, BMAX / N, N)
    abars = np.cumprod(1 - betas)
    n, S = args.n, args.sample_steps
    with torch.inference_mode():
        for kind in ["ddpm", "em"]:
            x = torch.randn(n, 2)
            z = torch.empty(n, 2)
            tt = torch.empty(n)
            t0 = time.perf_counter()
            for s in range(S):
                if kind == "ddpm":
                    i = N - 1 - s
                    tt.fill_((i + 1) / N)
                    eps = ema(x, tt)
                    beta, ab = float(betas[i]), float(abars[i])
                    x = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
                    if i > 0:
                        x += math.sqrt(beta) * z.normal_()
                else:
                    dt_ = (1.0 - EPS_T) / N
                    t = 1.0 - s * dt_
                    tt.fill_(t)
                    beta = BMIN + t * (BMAX - BMIN)
                    score = -ema(x, tt) / math.sqrt(-math.expm1(-int_beta(t)))
                    x = x - (-0.5 * beta * x - beta * score) * dt_
                    if s < N - 1:
                        x += math.sqrt(beta * dt_) * z.normal_()
            el = time.perf_counter() - t0
            print(f"RESULT {kind}_evals_per_s {k} {n * S / el:.6e}", flush=True)


print(f"torch {torch.__version__}", flush=True)
for k in [int(s) for s in args.threads.split(",")]:
    bench(k)
