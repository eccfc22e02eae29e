"""PyTorch replica of scoresde's image U-Net (src/nn/unet.rs) for the side-by-side benchmark
(reference for scoresde; never run by CI).

Usage:
  python3 unet_torch.py --check DIR                      # after `cargo bench --bench unet -- --export DIR`
  python3 unet_torch.py [--threads 1,2] [--presets mnist,emoji] [--variants eager,eager_cl,compiled,compiled_cl]
                        [--batch 32] [--train-steps 60] [--warmup 5] [--images 500] [--calls 6]

--check loads the project's own weights (DIR/<preset>/weights.safetensors, written by the project's
safetensors writer) and batch, and checks that the replica's output, DSM loss and every parameter
gradient equal scoresde's (relative error printed; fails above 1e-4 on the loss), and that the
parameter count is the same (175,761 for the MNIST preset).

The benchmark prints for each preset, variant and thread count k (torch.set_num_threads(k))
  RESULT <preset>_train_steps_per_s@<variant> k value   (batch 32: data draw, t, noise, forward,
                                                          backward, Adam, EMA)
  RESULT <preset>_evals_per_s@<variant> k value         (EMA model on 500 images per call, inference_mode)
Variants: eager NCHW, eager channels-last, torch.compile NCHW, torch.compile channels-last. Full fp32.

Network (as UNetConfig::build): temb = SiLU(Lin(SiLU(Lin(emb(t))))) with emb(t) = [sin(1000 t f_k),
cos(1000 t f_k)], f_k = exp(-ln(10000) k / half); conv_in 3x3; per level ResBlock(s), skip push,
3x3 stride-2 conv between levels; mid ResBlock; up: concat(h, skip) -> ResBlock, nearest x2 +
3x3 conv between levels; out = Conv3(SiLU(GN(h))). ResBlock(x): h = Conv3(SiLU(GN(x))) + Lin(temb);
h = Conv3(SiLU(GN(h))); out = h + (x or Conv1(x)). GroupNorm groups = largest divisor of c <= 8.
"""
import argparse, copy, math, os, sys, time

import torch
from torch import nn
import torch.nn.functional as F

PRESETS = {
    # name: (channels, side, widths, res_blocks, emb_dim, time_dim)  -- app::presets::preset
    "mnist": (1, 28, [16, 32, 32], 1, 32, 64),
    "emoji": (3, 16, [16, 32, 32], 1, 32, 64),
}
BMIN, BMAX, EPS_T = 0.1, 20.0, 1e-3


def groups_for(c, g=8):
    return next(k for k in range(min(g, c), 0, -1) if c % k == 0)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups_for(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups_for(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, ts):
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(ts)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class Level(nn.Module):
    pass


class UNet(nn.Module):
    def __init__(self, channels, widths, res_blocks=1, emb_dim=32, time_dim=64):
        super().__init__()
        self.emb_dim = emb_dim
        half = emb_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.time = nn.Sequential(nn.Linear(emb_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.conv_in = nn.Conv2d(channels, widths[0], 3, padding=1)
        L = len(widths)
        self.down = nn.ModuleList()
        c = widths[0]
        skips = []
        for l, w in enumerate(widths):
            lv = Level()
            lv.res = nn.ModuleList()
            for _ in range(res_blocks):
                lv.res.append(ResBlock(c, w, time_dim))
                c = w
                skips.append(c)
            if l + 1 < L:
                lv.down = nn.Conv2d(w, w, 3, stride=2, padding=1)
            self.down.append(lv)
        self.mid = ResBlock(c, widths[-1], time_dim)
        c = widths[-1]
        self.up = nn.ModuleList([Level() for _ in widths])
        for l in reversed(range(L)):
            w = widths[l]
            lv = self.up[l]
            lv.res = nn.ModuleList()
            for _ in range(res_blocks):
                lv.res.append(ResBlock(c + skips.pop(), w, time_dim))
                c = w
            if l > 0:
                lv.up = nn.Conv2d(w, w, 3, padding=1)
        self.out = Level()
        self.out.norm = nn.GroupNorm(groups_for(c), c)
        self.out.conv = nn.Conv2d(c, channels, 3, padding=1)
        self.levels = L

    def forward(self, x, t):
        ang = 1000.0 * t.double()[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.sin(ang), torch.cos(ang)], 1).float()
        ts = F.silu(self.time(emb))
        h = self.conv_in(x)
        skips = []
        for l in range(self.levels):
            lv = self.down[l]
            for rb in lv.res:
                h = rb(h, ts)
                skips.append(h)
            if l + 1 < self.levels:
                h = lv.down(h)
        h = self.mid(h, ts)
        for l in reversed(range(self.levels)):
            lv = self.up[l]
            for rb in lv.res:
                h = rb(torch.cat([h, skips.pop()], 1), ts)
            if l > 0:
                h = lv.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out.conv(F.silu(self.out.norm(h)))


def build(name):
    c, side, widths, rb, emb, tdim = PRESETS[name]
    return UNet(c, widths, rb, emb, tdim), (c, side)


def load_safetensors(path):
    from safetensors.torch import load_file
    return load_file(path)


def check(dir_):
    ok = True
    for name in PRESETS:
        sub = os.path.join(dir_, name)
        if not os.path.isdir(sub):
            continue
        model, _ = build(name)
        w = load_safetensors(os.path.join(sub, "weights.safetensors"))
        b = load_safetensors(os.path.join(sub, "batch.safetensors"))
        params = dict(model.named_parameters())
        n_ours = sum(v.numel() for v in w.values())
        n_torch = sum(p.numel() for p in params.values())
        assert set(params) == set(w), f"names differ: {set(params) ^ set(w)}"
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(w[k].reshape(p.shape))
        out = model(b["x"], b["t"])
        loss = ((out - b["target"]) ** 2).mean(dtype=torch.float64)
        loss.backward()
        rel = lambda a, r: float((a.double() - r.double()).norm() / r.double().norm().clamp_min(1e-30))
        l_ours = float(b["loss"][0])
        e_loss = abs(float(loss.detach()) - l_ours) / abs(l_ours)
        e_out = rel(out.detach(), b["out"])
        e_grad = max(rel(p.grad.reshape(-1), b[f"grad.{k}"].reshape(-1)) for k, p in params.items())
        good = n_ours == n_torch and e_loss < 1e-4 and e_out < 1e-4 and e_grad < 1e-3
        ok &= good
        print(f"{name}: parameters scoresde {n_ours} torch {n_torch}; loss scoresde {l_ours:.9f} "
              f"torch {float(loss.detach()):.9f} (rel {e_loss:.1e}); output rel {e_out:.1e}; "
              f"max gradient rel {e_grad:.1e}: {'OK' if good else 'MISMATCH'}", flush=True)
    sys.exit(0 if ok else 1)


def int_beta(t):
    return BMIN * t + 0.5 * (BMAX - BMIN) * t * t


def bench(name, variant, k, args):
    torch.set_num_threads(k)
    torch.manual_seed(0)
    model, (c, side) = build(name)
    cl = variant.endswith("_cl")
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
    ema_p, model_p = list(ema.parameters()), list(model.parameters())
    fwd = model
    efwd = ema
    if variant.startswith("compiled"):
        fwd = torch.compile(model)
        efwd = torch.compile(ema)
    B = args.batch
    data = torch.rand(1000, c, side, side) * 2 - 1

    def step():
        x0 = data[torch.randint(0, data.shape[0], (B,))]
        t = torch.rand(B) * (1 - EPS_T) + EPS_T
        z = torch.randn(B, c, side, side)
        ib = int_beta(t)[:, None, None, None]
        xt = (torch.exp(-0.5 * ib) * x0 + torch.sqrt(-torch.expm1(-ib)) * z).contiguous(memory_format=fmt)
        loss = ((fwd(xt, t) - z) ** 2).mean()
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
    print(f"RESULT {name}_train_steps_per_s@{variant} {k} {args.train_steps / dt:.6e}", flush=True)

    n = args.images
    x = (torch.rand(n, c, side, side) * 2 - 1).contiguous(memory_format=fmt)
    tt = torch.empty(n)
    with torch.inference_mode():
        tt.fill_(0.5)
        efwd(x, tt)
        t0 = time.perf_counter()
        for i in range(args.calls):
            tt.fill_((i + 1) / args.calls)
            out = efwd(x, tt)
        el = time.perf_counter() - t0
    print(f"RESULT {name}_evals_per_s@{variant} {k} {n * args.calls / el:.6e}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--check")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--presets", default="mnist,emoji")
    p.add_argument("--variants", default="eager,eager_cl,compiled,compiled_cl")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--train-steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--calls", type=int, default=6)
    args = p.parse_args()
    if args.check:
        check(args.check)
    print(f"torch {torch.__version__}", flush=True)
    for k in [int(s) for s in args.threads.split(",")]:
        for name in args.presets.split(","):
            for v in args.variants.split(","):
                bench(name, v, k, args)
