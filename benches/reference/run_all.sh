#!/usr/bin/env bash
# Side-by-side toy2d throughput: scoresde (cargo bench --bench toy2d), PyTorch eager and JAX,
# interleaved (rust, torch, jax-1, jax-2) for ROUNDS rounds, then the median of every figure
# per implementation and the ratios ours / theirs. Never run by CI.
#
#   benches/reference/run_all.sh [ROUNDS=3]
#   env: TRAIN_STEPS (2000) WARMUP (100) SAMPLE_STEPS (200) THREADS (1,2) OUT (log dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
TRAIN_STEPS=${TRAIN_STEPS:-2000}
WARMUP=${WARMUP:-100}
SAMPLE_STEPS=${SAMPLE_STEPS:-200}
THREADS=${THREADS:-1,2}
OUT=${OUT:-target/bench-logs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
echo "logs in $OUT; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench toy2d --no-run >/dev/null 2>&1 || cargo bench --bench toy2d --no-run
COMMON=(--train-steps "$TRAIN_STEPS" --warmup "$WARMUP" --sample-steps "$SAMPLE_STEPS")
# k threads run on k pinned cores (taskset -c 0..k-1): a library asked for
# one thread may still spawn more (measured: JAX with intra_op 1 and eigen
# threading off used 173% CPU), and pinning holds every implementation to
# the same cores.
pin() { if command -v taskset >/dev/null; then taskset -c "0-$(($1 - 1))" "${@:2}"; else "${@:2}"; fi; }
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)"
  : > "$OUT/rust-$r.txt"; : > "$OUT/torch-$r.txt"; : > "$OUT/jax-$r.txt"
  for k in ${THREADS//,/ }; do
    pin "$k" cargo bench --bench toy2d -q -- --threads "$k" "${COMMON[@]}" 2>/dev/null \
      | tee -a "$OUT/rust-$r.txt" | grep -v '^RESULT' || true
    pin "$k" python3 benches/reference/toy2d_torch.py --threads "$k" "${COMMON[@]}" \
      >> "$OUT/torch-$r.txt" 2>&1 || echo "torch ($k threads) failed (see $OUT/torch-$r.txt)"
    pin "$k" python3 benches/reference/toy2d_jax.py throughput --threads "$k" "${COMMON[@]}" \
      >> "$OUT/jax-$r.txt" 2>&1 || echo "jax ($k threads) failed (see $OUT/jax-$r.txt)"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'EOF'
import glob, os, statistics, sys
out = sys.argv[1]
vals = {}
for impl in ["rust", "torch", "jax"]:
    for f in sorted(glob.glob(os.path.join(out, f"{impl}-*.txt"))):
        for line in open(f):
            p = line.split()
            if len(p) == 4 and p[0] == "RESULT":
                vals.setdefault((impl, p[1], int(p[2])), []).append(float(p[3]))
med = {k: statistics.median(v) for k, v in vals.items()}
threads = sorted({k[2] for k in med})
print(f"\nmedians over rounds ({out})")
print("| figure | threads | ours | torch | jax | ours/torch | ours/jax |")
print("|---|---:|---:|---:|---:|---:|---:|")
for fig in ["train_steps_per_s", "ddpm_evals_per_s", "em_evals_per_s"]:
    for k in threads:
        o, t, j = (med.get((i, fig, k)) for i in ["rust", "torch", "jax"])
        f = lambda v: "-" if v is None else (f"{v:.1f}" if v < 1e4 else f"{v:.3e}")
        r = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"
        print(f"| {fig} | {k} | {f(o)} | {f(t)} | {f(j)} | {r(o, t)} | {r(o, j)} |")
print("\n| threads | matrixmultiply 512x256x256 / 1024^3 GFLOP/s | own GEMM 512x256x256 / 1024^3 GFLOP/s | peak | train GFLOP/s | train / peak | sampling / peak | paired windows: train / GEMM GFLOP/s |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in threads:
    g = lambda n: med.get(("rust", n, k), float("nan"))
    print(f"| {k} | {g('gemm_512x256x256_gflops'):.1f} / {g('gemm_1024cubed_gflops'):.1f} | "
          f"{g('gemm_own_512x256x256_gflops'):.1f} / {g('gemm_own_1024cubed_gflops'):.1f} | {g('gemm_peak_gflops'):.1f} | "
          f"{g('train_gflops'):.1f} | {100 * g('train_frac_of_peak'):.0f}% | {100 * g('sample_frac_of_peak'):.0f}% | "
          f"{g('paired_train_gflops'):.1f} / {g('paired_gemm_gflops'):.1f} = {100 * g('train_frac_of_paired_gemm'):.0f}% |")
EOF
