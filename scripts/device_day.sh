#!/usr/bin/env bash
# The GPU day (issue 28) as one prepared command on the lent GPU machine, which reaches no package index.
#
# Build the kit here first (make device-kit: .whl/dict.tar.xz + .whl/stack.tar.xz, scripts/device_kit.py). The two
# parts do not fit in one call beside the tree (64 MiB in all), so it takes two calls, the second at once after the
# first (the machine keeps ignored paths such as .device-site/ while it stays warm, 30 s):
#
#   call 1: carry [".whl/dict.tar.xz"]    command: bash scripts/device_day.sh dict     (~1 min: unpack, preflight)
#   call 2: carry [".whl/stack.tar.xz"]   command: bash scripts/device_day.sh          (~9 min, timeout_s 600)
#
# Call 2, in priority order, each step bounded by what is left of DEVICE_DAY_SECONDS (default 520):
#   1. the machine and the versions that ran (machine.txt), the preflight table (preflight.txt);
#   2. make check-gpu in bf16 (check_gpu_bf16.log): every notebook, gpu profile, tiny model, offline;
#   3. benchmarks/gpu_qlora.py, the profile variant on the 7B shape with generation (benchmark.json/.log);
#   4. make check-gpu with WORKSHOP_COMPUTE_DTYPE=float16, the T4 path (check_gpu_fp16.log);
#   5. more benchmark variants (no-gc, 8x2, padding-free, fp16; no generation) while time is left;
# and always summary.txt (step, exit code, seconds) and check_gpu_outputs.tar.gz (the notebooks' JSON results).
# That is 8 files, the most a call brings back. If call 1's part is missing (the machine went back in between),
# the notebooks are skipped (ROUGE needs MeCab's dictionary) and the benchmark still runs.
#
# REHEARSAL=1 runs the same steps on a machine without CUDA (the cpu profile, the benchmark's tiny-test shape, no
# fp16 pass; STEP_SCALE=4 DEVICE_DAY_SECONDS=2400 on 2 cores): it checks that the kit holds every module the run
# imports, with a Python that has only the image's packages (tests/test_device_kit.py says how it was rehearsed). DEVICE_PYTHON is the machine's Python (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
OUT=${OUT:-$ROOT/outputs/device-day}
SITE=$ROOT/.device-site
PY=$(command -v "${DEVICE_PYTHON:-python3}")
START=$SECONDS
BUDGET=${DEVICE_DAY_SECONDS:-520}
REHEARSAL=${REHEARSAL:-0}
STEP_SCALE=${STEP_SCALE:-1}  # a rehearsal on 2 CPU cores needs longer steps than the GPU
mkdir -p "$OUT" "$SITE"
SUMMARY=$OUT/summary.txt
[ -f "$SUMMARY" ] || printf 'step\texit\tseconds\tnote\n' >"$SUMMARY"

log() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$SUMMARY"; }
left() { echo $((BUDGET - (SECONDS - START))); }

# step NAME MIN_SECONDS MAX_SECONDS LOGFILE COMMAND...: runs COMMAND with a timeout of min(MAX, time left) when at
# least MIN seconds are left, else records that it was skipped.
step() {
    local name=$1 min=$2 max=$3 logfile=$4; shift 4
    local limit; limit=$(left)
    max=$((max * STEP_SCALE))
    [ "$limit" -gt "$max" ] && limit=$max
    if [ "$limit" -lt "$min" ]; then log "$name" skipped 0 "only $(left) s left, needs $min"; return 0; fi
    local t0=$SECONDS
    echo "== $name (limit ${limit} s): $*" | tee -a "$logfile"
    timeout --kill-after=10 "$limit" "$@" >>"$logfile" 2>&1
    local rc=$?
    log "$name" "$rc" $((SECONDS - t0)) "$( { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && echo "timed out at ${limit} s")"
    tail -n 3 "$logfile"
    return 0
}

# Each part of the kit unpacks into .device-site/ once (a marker per part, with the archive's size).
unpack() {
    local archive part
    for archive in "$ROOT"/.whl/*.tar.xz; do
        [ -f "$archive" ] || continue
        part=$(basename "$archive" .tar.xz)
        if [ "$(cat "$SITE/.$part.done" 2>/dev/null)" != "$(stat -c %s "$archive")" ]; then
            local t0=$SECONDS
            "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
                "$archive" "$SITE" || { log "unpack $part" 1 $((SECONDS - t0)); return 1; }
            stat -c %s "$archive" >"$SITE/.$part.done"
            log "unpack $part" 0 $((SECONDS - t0))
        fi
    done
}

unpack || exit 1
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# make check-gpu runs $(BIN)/python: a wrapper, not a symlink (a symlinked venv Python would lose its venv).
mkdir -p "$SITE/bin"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" >"$SITE/bin/python"
chmod +x "$SITE/bin/python"

machine() {
    date -u
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$PY" - <<'EOF'
import importlib.metadata as md, platform, sys
print("python", platform.python_version(), sys.executable)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:  # the report must still be written
    print("torch:", repr(error))
for name in ["transformers", "tokenizers", "huggingface-hub", "peft", "trl", "accelerate", "bitsandbytes", "datasets",
             "safetensors", "numpy", "pandas", "pyarrow", "matplotlib", "pytest", "nbmake", "ipykernel", "triton",
             "fugashi", "unidic-lite", "rouge-score"]:
    try:
        dist = md.distribution(name)
        print(f"{name} {dist.version} {dist.locate_file('')}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
EOF
    command -v cc gcc || echo "no C compiler on PATH"
    df -h "$ROOT" /tmp 2>&1
}

if [ "$MODE" = dict ]; then
    machine >"$OUT/machine.txt" 2>&1
    step preflight 5 60 "$OUT/preflight.txt" "$PY" -m utils.preflight
    exit 0
fi

t0=$SECONDS; machine >"$OUT/machine.txt" 2>&1; log machine $? $((SECONDS - t0))
mkdir -p "$ROOT/outputs"
step preflight 5 60 "$OUT/preflight.txt" "$PY" -m utils.preflight --json "$ROOT/outputs/preflight.json"

if [ "$REHEARSAL" = 1 ]; then  # the benchmark's own CPU smoke settings (tests/test_benchmarks.py)
    PROFILE=cpu
    SHAPE=(--shape tiny-test --profile cpu --steps 2 --warmup-steps 1 --gen-prompts 4 --gen-single 2 --gen-new-tokens 8
           --set n_train=24 --set max_length=256)
else
    PROFILE=gpu
    SHAPE=()
fi
BENCH=(--out "$OUT/benchmark.json" --work-dir "$ROOT/outputs/benchmarks")
# The Makefile's check-gpu line with this machine's Python; setup's stamp is taken as made (-o): no venv here.
CHECK_GPU=(make --no-print-directory -o .venv/.installed check-gpu BIN="$SITE/bin" CHECK_GPU_PROFILE=$PROFILE)

if [ -f "$SITE/.dict.done" ]; then
    step check_gpu_bf16 60 300 "$OUT/check_gpu_bf16.log" "${CHECK_GPU[@]}" CHECK_GPU_OUT="$ROOT/outputs/check-gpu-bf16"
else
    log check_gpu_bf16 skipped 0 "the dict part (call 1) is missing: ROUGE needs MeCab's dictionary"
fi
step benchmark_profile 60 240 "$OUT/benchmark.log" "$PY" benchmarks/gpu_qlora.py --variants profile "${SHAPE[@]}" "${BENCH[@]}"
if [ "$REHEARSAL" = 1 ]; then
    log check_gpu_fp16 skipped 0 "rehearsal: fp16 compute is a GPU path"
elif [ -f "$SITE/.dict.done" ]; then
    step check_gpu_fp16 60 240 "$OUT/check_gpu_fp16.log" \
        env WORKSHOP_COMPUTE_DTYPE=float16 "${CHECK_GPU[@]}" CHECK_GPU_OUT="$ROOT/outputs/check-gpu-fp16"
fi
for variant in no-gc 8x2 padding-free fp16; do
    step "benchmark_$variant" 45 120 "$OUT/benchmark.log" "$PY" benchmarks/gpu_qlora.py --variants "$variant" --no-generation \
        "${SHAPE[@]}" "${BENCH[@]}"
done

# The notebooks' JSON results and the preflight's JSON in one file: a call brings back 8 files at most.
(cd "$ROOT" && find outputs/check-gpu-* outputs/preflight.json -type f \( -name '*.json' -o -name '*.jsonl' \
    -o -name '*.csv' -o -name '*.txt' \) ! -name 'tokenizer*' ! -path '*/splits/*' ! -path '*/checkpoint-*' -size -4M 2>/dev/null |
    tar -czf "$OUT/check_gpu_outputs.tar.gz" -T -) 2>>"$SUMMARY"
log total 0 $((SECONDS - START)) "files: $(ls "$OUT" | tr '\n' ' ')"
cat "$SUMMARY"
