#!/usr/bin/env bash
# gpu-bench.sh: time training steps of the paper's network on an NVIDIA GPU, covseg (GoMLX + XLA
# CUDA) against PyTorch, in float32 and bfloat16, on the same card in one go.
#
#   scripts/gpu-bench.sh [COVSEG_BINARY]
#
# Needs: a covseg binary built with cgo (CGO_ENABLED=1 go build -o bin/covseg ./cmd/covseg; it
# links the XLA backend and loads the PJRT plugin with dlopen, so build it dynamically: a fully
# static binary cannot load the plugin), by default bin/covseg in the repository; python3 (or
# $PYTHON) with jax-cuda13-pjrt (the PJRT plugin jax_plugins/xla_cuda13/*.so and the nvidia
# wheels beside it) and torch with CUDA; nvidia-smi. Nothing is downloaded.
#
# Environment: SHAPE (default 20x224x224), STEPS (30), STEP_TIMEOUT_COVSEG (170 s per covseg run),
# STEP_TIMEOUT_TORCH (70 s per PyTorch run), OUT (results folder; default gpu-bench-out). The four
# runs stay under about 8 minutes together.
#
# Each run's JSON lines go to $OUT/<engine>-<dtype>.jsonl; nvidia-smi's memory.used is sampled
# every 100 ms during each run ($OUT/<engine>-<dtype>.smi) and its peak over the idle baseline is
# reported for both engines (it includes the CUDA context and allocator pools); PyTorch's own
# torch.cuda.max_memory_allocated is reported too. covseg asks XLA not to preallocate GPU memory
# (covseg bench train does so unless --preallocate), so nvidia-smi sees what it uses.
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
COVSEG=${1:-${COVSEG:-$REPO/bin/covseg}}
PY=${PYTHON:-python3}
SHAPE=${SHAPE:-20x224x224}
STEPS=${STEPS:-30}
T_COVSEG=${STEP_TIMEOUT_COVSEG:-170}
T_TORCH=${STEP_TIMEOUT_TORCH:-70}
OUT=${OUT:-$REPO/gpu-bench-out}
mkdir -p "$OUT"

say() { echo "gpu-bench: $*" >&2; }
die() { say "$*"; exit 1; }

BENCH_DIR=""
for d in "$REPO/../shared/bench" "$REPO/shared/bench"; do
	[ -f "$d/torch_unet3d.py" ] && BENCH_DIR=$(cd "$d" && pwd) && break
done
[ -n "$BENCH_DIR" ] || die "no shared/bench/torch_unet3d.py beside or inside $REPO"
[ -x "$COVSEG" ] || die "no covseg binary at $COVSEG (build: CGO_ENABLED=1 go build -o bin/covseg ./cmd/covseg)"
if ldd "$COVSEG" 2>&1 | grep -q "not a dynamic executable"; then
	say "warning: $COVSEG is static; dlopen of the PJRT plugin will likely fail (build with CGO_ENABLED=1, dynamically)"
fi
command -v nvidia-smi >/dev/null || die "nvidia-smi not found"
nvidia-smi -L >&2

# The PJRT plugin of jax-cuda13-pjrt and the site-packages folder holding it.
PLUGIN=$("$PY" - <<'EOF'
import glob, os, site, sys
dirs = list(dict.fromkeys(site.getsitepackages() + [site.getusersitepackages()] + sys.path))
for d in dirs:
    for so in sorted(glob.glob(os.path.join(d, "jax_plugins", "xla_cuda13", "*.so"))):
        print(os.path.abspath(so))
        sys.exit(0)
sys.exit(1)
EOF
) || die "no jax_plugins/xla_cuda13/*.so in $PY's site-packages (pip package jax-cuda13-pjrt)"
SITE=$(dirname "$(dirname "$(dirname "$PLUGIN")")")
NVIDIA=$SITE/nvidia
say "PJRT plugin $PLUGIN"

# XLA needs libdevice and ptxas: point it at the CUDA folder of the nvidia wheels. go-xla v0.1.4
# would otherwise overwrite XLA_FLAGS with a path of its own (GOPJRT_CUDA_CHECKS=0 stops it too).
CUDA_DIR=$NVIDIA
LIBDEVICE=$(find "$NVIDIA" -name 'libdevice.10.bc' 2>/dev/null | head -n 1)
if [ -n "$LIBDEVICE" ]; then
	CUDA_DIR=$(dirname "$(dirname "$(dirname "$LIBDEVICE")")") # <dir>/nvvm/libdevice/libdevice.10.bc
fi
PTXAS=$(find "$NVIDIA" -name ptxas -type f 2>/dev/null | head -n 1)
[ -n "$PTXAS" ] && export PATH="$(dirname "$PTXAS"):$PATH"
LIBS=$(find "$NVIDIA" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}"
export XLA_FLAGS="--xla_gpu_cuda_data_dir=$CUDA_DIR ${XLA_FLAGS:-}"
export GOPJRT_CUDA_CHECKS=0
export GOMLX_NO_AUTO_INSTALL=1
export GOMLX_BACKEND="xla:$PLUGIN"
say "XLA_FLAGS=$XLA_FLAGS"
say "ptxas: ${PTXAS:-not found, XLA may fall back to the driver}"

# run NAME TIMEOUT CMD...: runs CMD with a timeout, its stdout to $OUT/NAME.jsonl, sampling
# nvidia-smi's memory.used (MiB) meanwhile.
run() {
	local name=$1 limit=$2
	shift 2
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >"$OUT/$name.base"
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >"$OUT/$name.smi" &
	local smi=$!
	say "$name: $*"
	local start=$SECONDS
	timeout --signal=INT --kill-after=10 "$limit" "$@" >"$OUT/$name.jsonl" 2>"$OUT/$name.err"
	local rc=$?
	kill "$smi" 2>/dev/null
	wait "$smi" 2>/dev/null
	say "$name: exit $rc after $((SECONDS - start)) s"
	[ $rc -eq 0 ] || tail -n 5 "$OUT/$name.err" >&2
}

IFS=x read -r D H W <<<"$SHAPE"
for dt in f32 bf16; do
	run "covseg-$dt" "$T_COVSEG" "$COVSEG" bench train --shape "$SHAPE" --steps "$STEPS" --dtype "$dt" --width 1
done
for dt in f32 bf16; do
	run "torch-$dt" "$T_TORCH" "$PY" "$REPO/tools/torch_train_bench.py" --device cuda --dtype "$dt" \
		--shape "$D" "$H" "$W" --steps "$STEPS" --bench "$BENCH_DIR"
done

# The table: seconds per step (median of the steps after the first), first step, peak memory.
"$PY" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = {}
for engine in ("covseg", "torch"):
    for dt in ("f32", "bf16"):
        name = f"{engine}-{dt}"
        summary, steps = None, []
        try:
            for line in open(os.path.join(out, name + ".jsonl")):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "summary":
                    summary = ev
                elif ev.get("event") == "step":
                    steps.append(ev["seconds"])
        except OSError:
            pass
        def mib(path):
            vals = [float(v) for v in open(path).read().split() if v.strip()] if os.path.exists(path) else []
            return max(vals) if vals else None
        base, peak = mib(os.path.join(out, name + ".base")), mib(os.path.join(out, name + ".smi"))
        smi = peak - base if base is not None and peak is not None else None
        if summary is None and steps:  # cut short: use the steps it finished
            rest = sorted(steps[1:]) or steps
            summary = {"first_step_s": steps[0], "step_median_s": rest[len(rest) // 2], "partial": True}
        rows[name] = (summary, smi, len(steps))
        json.dump({"run": name, "steps_done": len(steps), "nvidia_smi_peak_mb": smi, "summary": summary},
                  open(os.path.join(out, name + ".result.json"), "w"))
fmt = "{:<13} {:>6} {:>12} {:>13} {:>16} {:>18}"
print(fmt.format("run", "steps", "first step s", "median step s", "nvidia-smi MiB", "torch alloc MiB"))
for name, (s, smi, n) in rows.items():
    if s is None:
        print(fmt.format(name, n, "failed", "", "", ""))
        continue
    alloc = s.get("peak_device_mb")
    print(fmt.format(name + ("*" if s.get("partial") else ""), n, f"{s['first_step_s']:.2f}", f"{s['step_median_s']:.3f}",
                     f"{smi:.0f}" if smi is not None else "n/a", f"{alloc:.0f}" if alloc else "n/a"))
for dt in ("f32", "bf16"):
    c, t = rows[f"covseg-{dt}"][0], rows[f"torch-{dt}"][0]
    if c and t:
        ratio = c["step_median_s"] / t["step_median_s"]
        mem = ""
        if rows[f"covseg-{dt}"][1] and rows[f"torch-{dt}"][1]:
            mem = f", nvidia-smi memory {rows[f'covseg-{dt}'][1] / rows[f'torch-{dt}'][1]:.2f}x"
        print(f"{dt}: covseg/PyTorch time per step {ratio:.2f}x{mem}")
print("(* cut short by the timeout: statistics of the steps it finished)")
EOF
