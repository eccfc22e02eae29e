#!/usr/bin/env bash
# Side-by-side U-Net throughput: scoresde (cargo bench --bench unet) and the PyTorch replica
# (unet_torch.py: eager NCHW, eager channels-last, torch.compile NCHW / channels-last), first the
# replica check on the project's own weights, then ROUNDS interleaved rounds (per round and thread
# count k: rust, torch), every k-thread run pinned to cores 0..k-1 with taskset; prints the median
# of every figure and ours / best PyTorch variant. Never run by CI.
#
#   benches/reference/run_unet.sh [ROUNDS=3]
#   env: PRESETS (mnist,emoji) VARIANTS (eager,eager_cl,compiled,compiled_cl) THREADS (1,2)
#        TRAIN_STEPS (60) WARMUP (5) CALLS (6) OUT (log dir)
#        BASELINE (optional: another build of the bench binary, e.g. of main, run in the same
#        rounds and shown as its own column, so that a speed-up is a ratio from one run)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
PRESETS=${PRESETS:-mnist,emoji}
VARIANTS=${VARIANTS:-eager,eager_cl,compiled,compiled_cl}
THREADS=${THREADS:-1,2}
TRAIN_STEPS=${TRAIN_STEPS:-60}
WARMUP=${WARMUP:-5}
CALLS=${CALLS:-6}
OUT=${OUT:-target/bench-logs/unet-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
echo "logs in $OUT; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --bench unet --no-run >/dev/null 2>&1 || cargo bench --bench unet --no-run
# A copy, so that a rebuild during the run does not change what is measured.
cp "$(cargo bench --bench unet --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -1)" "$OUT/unet-bench"
BIN=$OUT/unet-bench
"$BIN" --export "$OUT/export" --presets "$PRESETS"
python3 benches/reference/unet_torch.py --check "$OUT/export" 2>&1 | grep -v -i warn | tee "$OUT/check.txt"
COMMON=(--presets "$PRESETS" --train-steps "$TRAIN_STEPS" --warmup "$WARMUP" --calls "$CALLS")
pin() { if command -v taskset >/dev/null; then taskset -c "0-$(($1 - 1))" "${@:2}"; else "${@:2}"; fi; }
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)"
  : > "$OUT/rust-$r.txt"; : > "$OUT/torch-$r.txt"
  for k in ${THREADS//,/ }; do
    pin "$k" "$BIN" --threads "$k" "${COMMON[@]}" | tee -a "$OUT/rust-$r.txt" | grep -v '^RESULT' || true
    if [ -n "${BASELINE:-}" ]; then
      pin "$k" "$BASELINE" --threads "$k" "${COMMON[@]}" | sed 's/^RESULT \([^ ]*\)/RESULT \1@baseline/' \
        | tee -a "$OUT/rust-$r.txt" | grep -v '^RESULT' | sed 's/^/baseline /' || true
    fi
    pin "$k" python3 benches/reference/unet_torch.py --threads "$k" --variants "$VARIANTS" "${COMMON[@]}" \
      >> "$OUT/torch-$r.txt" 2>&1 || echo "torch ($k threads) failed (see $OUT/torch-$r.txt)"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$VARIANTS" <<'PY'
import glob, os, statistics, sys
out, variants = sys.argv[1], sys.argv[2].split(",")
vals = {}
for impl in ["rust", "torch"]:
    for f in sorted(glob.glob(os.path.join(out, f"{impl}-*.txt"))):
        for line in open(f):
            p = line.split()
            if len(p) == 4 and p[0] == "RESULT":
                name, _, var = p[1].partition("@")
                vals.setdefault((var or "ours", name, int(p[2])), []).append(float(p[3]))
med = {k: statistics.median(v) for k, v in vals.items()}
figs = sorted({k[1] for k in med})
threads = sorted({k[2] for k in med})
print(f"\nmedians over rounds ({out})")
has_base = any(k[0] == "baseline" for k in med)
cols = (["baseline"] if has_base else []) + variants
print("| figure | threads | scoresde | " + " | ".join(cols) + " | ours / best torch |"
      + (" ours / baseline |" if has_base else ""))
print("|---|---:|---:|" + "---:|" * len(cols) + "---:|" + ("---:|" if has_base else ""))
for fig in figs:
    for k in threads:
        o = med.get(("ours", fig, k))
        th = [med.get((v, fig, k)) for v in variants]
        best = max([v for v in th if v is not None], default=None)
        base = med.get(("baseline", fig, k))
        f = lambda v: "-" if v is None else f"{v:.3g}"
        r = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"
        row = [f(base)] if has_base else []
        line = f"| {fig} | {k} | {f(o)} | " + " | ".join(row + [f(v) for v in th]) + f" | {r(o, best)} |"
        print(line + (f" {r(o, base)} |" if has_base else ""))
PY
