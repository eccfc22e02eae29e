"""docs/SPEC.md toy2d workload in JAX (reference for scoresde; never run by CI).

Usage:
  python3 toy2d_jax.py quality  [--steps 20000] [--seed 0]   # train, sample DDPM-1000 and EM-1000, report SWD and support
  python3 toy2d_jax.py throughput --threads k [--train-steps 2000] [--warmup 100] [--sample-steps 200]
      # prints RESULT lines: train steps/s, DDPM and EM model evaluations/s (10,000 samples)

Everything follows ../../docs/SPEC.md: checkerboard data, 34->256->256->256->2 SiLU MLP with
PyTorch-default init, sinusoidal time embedding (t*1000, 16 frequencies), VP SDE (beta 0.1 -> 20),
eps-prediction DSM loss with t ~ U(1e-3, 1), Adam 1e-3, batch 512, EMA 0.999.
"""
import argparse, os, sys, time

def set_threads(k):
    if k:
        os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen={'true' if k > 1 else 'false'} intra_op_parallelism_threads={k}"
        os.environ["OMP_NUM_THREADS"] = str(k)

p = argparse.ArgumentParser()
p.add_argument("mode", choices=["quality", "throughput"])
p.add_argument("--steps", type=int, default=20000)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--n", type=int, default=10000)
p.add_argument("--train-steps", type=int, default=2000)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--sample-steps", type=int, default=200, help="throughput: timed sampler steps (per-step work is the same for any N)")
args = p.parse_args()
set_threads(args.threads)

import numpy as np
import jax, jax.numpy as jnp

BMIN, BMAX, EPS_T, N = 0.1, 20.0, 1e-3, 1000

def checkerboard(rng, n):
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + (np.floor(x1) % 2)
    return (2 * np.stack([x1, x2], 1)).astype(np.float32)

def in_support(x):
    ok = (np.abs(x) < 4).all(1)
    return float(np.mean(ok & ((np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2 == 0)))

def in_box(x):
    return float(np.mean((np.abs(x) < 4).all(1)))

def swd(a, b, rng, n_proj=256):
    d = rng.normal(size=(n_proj, 2)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    pa, pb = np.sort(a @ d.T, 0), np.sort(b @ d.T, 0)
    return float(np.mean(np.abs(pa - pb)))

def init(key):
    sizes = [(34, 256), (256, 256), (256, 256), (256, 2)]
    params = []
    for fi, fo in sizes:
        key, k1, k2 = jax.random.split(key, 3)
        bound = 1 / np.sqrt(fi)
        params.append((jax.random.uniform(k1, (fi, fo), minval=-bound, maxval=bound),
                       jax.random.uniform(k2, (fo,), minval=-bound, maxval=bound)))
    return params

FREQS = jnp.exp(-np.log(10000.0) * jnp.arange(16) / 16)

def net(params, x, t):
    ang = 1000.0 * t[:, None] * FREQS[None, :]
    h = jnp.concatenate([x, jnp.sin(ang), jnp.cos(ang)], 1)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.silu(h)
    return h

def int_beta(t): return BMIN * t + 0.5 * (BMAX - BMIN) * t * t
def alpha(t): return jnp.exp(-0.5 * int_beta(t))
def sigma(t): return jnp.sqrt(-jnp.expm1(-int_beta(t)))

def loss_fn(params, x0, t, z):
    xt = alpha(t)[:, None] * x0 + sigma(t)[:, None] * z
    return jnp.mean((net(params, xt, t) - z) ** 2)

LR, B1, B2, AEPS = 1e-3, 0.9, 0.999, 1e-8

@jax.jit
def train_step(state, x0, key):
    params, m, v, ema, k = state
    k1, k2 = jax.random.split(key)
    t = jax.random.uniform(k1, (x0.shape[0],), minval=EPS_T, maxval=1.0)
    z = jax.random.normal(k2, x0.shape)
    loss, g = jax.value_and_grad(loss_fn)(params, x0, t, z)
    k = k + 1
    m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
    v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
    params = jax.tree.map(lambda p, m, v: p - LR * (m / (1 - B1 ** k)) / (jnp.sqrt(v / (1 - B2 ** k)) + AEPS), params, m, v)
    ema = jax.tree.map(lambda e, p: 0.999 * e + 0.001 * p, ema, params)
    return (params, m, v, ema, k), loss

def new_state(key):
    params = init(key)
    zeros = jax.tree.map(jnp.zeros_like, params)
    return (params, zeros, zeros, params, 0)

BETAS = np.linspace(BMIN / N, BMAX / N, N)
ABARS = np.cumprod(1 - BETAS)

@jax.jit
def ddpm_step(params, x, i, z):
    t = jnp.full((x.shape[0],), (i + 1) / N)
    eps = net(params, x, t)
    beta, ab = jnp.asarray(BETAS)[i], jnp.asarray(ABARS)[i]
    x = (x - beta / jnp.sqrt(1 - ab) * eps) / jnp.sqrt(1 - beta)
    return x + jnp.where(i > 0, jnp.sqrt(beta), 0.0) * z

@jax.jit
def em_step(params, x, k, z):
    dt = (1.0 - EPS_T) / N
    t = 1.0 - k * dt
    tt = jnp.full((x.shape[0],), t)
    beta = BMIN + t * (BMAX - BMIN)
    score = -net(params, x, tt) / sigma(t)
    x = x - (-0.5 * beta * x - beta * score) * dt
    return x + jnp.where(k < N - 1, jnp.sqrt(beta * dt), 0.0) * z

def sample(params, kind, n, key):
    key, k0 = jax.random.split(key)
    x = jax.random.normal(k0, (n, 2))
    for s in range(N):
        key, kz = jax.random.split(key)
        z = jax.random.normal(kz, (n, 2))
        x = ddpm_step(params, x, N - 1 - s, z) if kind == "ddpm" else em_step(params, x, s, z)
    return np.asarray(x)

def main():
    rng = np.random.default_rng(args.seed)
    key = jax.random.PRNGKey(args.seed)
    state = new_state(key)
    if args.mode == "throughput":
        k = args.threads or os.cpu_count()
        def steps(n):
            nonlocal state
            for i in range(n):
                state, loss = train_step(state, checkerboard(rng, 512), jax.random.PRNGKey(i))
            loss.block_until_ready()
        steps(args.warmup)
        t0 = time.perf_counter(); steps(args.train_steps); dt = time.perf_counter() - t0
        print(f"RESULT train_steps_per_s {k} {args.train_steps / dt:.6e}", flush=True)
        params = state[3]
        S, n = args.sample_steps, args.n
        for kind, fn in [("ddpm", lambda x, s, z: ddpm_step(params, x, N - 1 - s, z)),
                         ("em", lambda x, s, z: em_step(params, x, s, z))]:
            x = jax.random.normal(key, (n, 2))
            for s in range(5): x = fn(x, s, x)  # compile
            x.block_until_ready()
            kz = jax.random.PRNGKey(1)
            t0 = time.perf_counter()
            for s in range(S):
                kz, k1 = jax.random.split(kz)
                x = fn(x, s, jax.random.normal(k1, (n, 2)))
            x.block_until_ready(); dt = time.perf_counter() - t0
            print(f"RESULT {kind}_evals_per_s {k} {n * S / dt:.6e}", flush=True)
        return
    t0 = time.perf_counter()
    for i in range(args.steps):
        state, loss = train_step(state, checkerboard(rng, 512), jax.random.fold_in(key, i))
        if (i + 1) % 5000 == 0:
            print(f"step {i + 1} loss {float(loss):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    ema = state[3]
    floor = swd(checkerboard(rng, args.n), checkerboard(rng, args.n), rng)
    for kind in ["ddpm", "em"]:
        x = sample(ema, kind, args.n, jax.random.fold_in(key, 10**6 + len(kind)))
        s = swd(x, checkerboard(rng, args.n), rng)
        print(f"{kind}: SWD {s:.4f} floor {floor:.4f} ratio {s / floor:.2f} in_support {100 * in_support(x):.1f}% in_box {100 * in_box(x):.1f}%", flush=True)

main()
