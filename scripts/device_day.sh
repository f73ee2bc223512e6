#!/usr/bin/env bash
# The GPU day (issue 28) as one prepared command on the lent GPU machine, which reaches no package index.
#
# Build the kit here first (make device-kit: .whl/dict.tar.xz + .whl/stack.tar.xz, scripts/device_kit.py). The two
# parts do not fit in one call beside the tree (64 MiB in all), so it takes two calls, the second at once after the
# first (the machine keeps ignored paths such as .device-site/ while it stays warm, 30 s):
#
#   call 1: carry [".whl/dict.tar.xz"]    command: bash scripts/device_day.sh dict     (~1 min: unpack, preflight)
#   call 2: carry [".whl/stack.tar.xz"]   command: bash scripts/device_day.sh          (~7 min, timeout_s 540)
#
# Call 2, in priority order, each step bounded by what is left of DEVICE_DAY_SECONDS (default 420, so that the two
# calls and the machine's start leave about 3 of the 15 device minutes for a rerun):
#   1. the machine (machine.txt: nvidia-smi, torch, where each module is imported from, CONFLICT lines for any
#      requirement of the carried stack that the image's versions do not meet), the preflight table (preflight.txt);
#   2. make check-gpu in bf16 (check_gpu_bf16.log): every notebook, gpu profile, tiny model, offline; at most 240 s
#      and never the last 200 s, which the 7B benchmark needs;
#   3. benchmarks/gpu_qlora.py, the profile variant on the 7B shape with generation (benchmark.json/.log);
#   4. make check-gpu with WORKSHOP_COMPUTE_DTYPE=float16, the T4 path (check_gpu_fp16.log);
#   5. more benchmark variants (no-gc, 8x2, padding-free, fp16; no generation) while time is left;
# and always summary.txt (step, exit code, seconds, why a step did not run) and check_gpu_outputs.tar.gz (the
# notebooks' JSON results). That is 8 files, the most a call brings back. If call 1's part is missing (the machine
# went back in between), the notebooks are skipped (ROUGE needs MeCab's dictionary) and the benchmark still runs.
#
# A rerun of some steps, while the machine is still warm (no machine starts with under 4 device minutes left):
#   ONLY="check_gpu_fp16 benchmark_8x2" DEVICE_DAY_SECONDS=<timeout_s - 30> bash scripts/device_day.sh
# DRY_RUN=1 writes each step's command and limit to summary.txt and runs none (no device time needed to read it).
# Without make on the image the check-gpu recipe runs by hand (tests/test_device_kit.py holds it equal to make's).
#
# REHEARSAL=1 runs the same steps on a machine without CUDA (the cpu profile, the benchmark's tiny-test shape, no
# fp16 pass): with a kit built for the local Python (device_kit.py --python-version 3.11 --out DIR; DEVICE_KIT=DIR),
# DEVICE_PYTHON a Python holding only the image's packages, STEP_SCALE=4 DEVICE_DAY_SECONDS=2400 on 2 cores, it
# checks that the kit holds every module the run imports. DEVICE_PYTHON is the machine's Python (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
OUT=${OUT:-$ROOT/outputs/device-day}
SITE=${DEVICE_SITE:-$ROOT/.device-site}
KIT=${DEVICE_KIT:-$ROOT/.whl}
WORK=${DEVICE_WORK:-$ROOT/outputs}  # the notebooks' outputs, the preflight's JSON, the benchmark's 7B model
DRY_RUN=${DRY_RUN:-0}  # 1: write each step's command to the summary instead of running it
PY=$(command -v "${DEVICE_PYTHON:-python3}")
START=$SECONDS
BUDGET=${DEVICE_DAY_SECONDS:-420}
ONLY=${ONLY:-}  # a rerun of some steps only, e.g. ONLY="check_gpu_fp16 benchmark_8x2" (machine and preflight always run)
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
    if [ -n "$ONLY" ] && [ "$name" != preflight ] && [[ " $ONLY " != *" $name "* ]]; then
        log "$name" skipped 0 "not in ONLY"; return 0
    fi
    local limit; limit=$(left)
    max=$((max * STEP_SCALE))
    [ "$limit" -gt "$max" ] && limit=$max
    if [ "$limit" -lt "$min" ]; then log "$name" skipped 0 "only $(left) s left, needs $min"; return 0; fi
    local t0=$SECONDS
    if [ "$DRY_RUN" = 1 ]; then log "$name" dry-run 0 "limit ${limit} s: $*"; return 0; fi
    echo "== $name (limit ${limit} s): $*" | tee -a "$logfile"
    timeout --kill-after=10 "$limit" "$@" >>"$logfile" 2>&1
    local rc=$?
    local note=""
    [ $rc -eq 124 ] && note="timed out at ${limit} s"
    [ $rc -eq 137 ] && note="killed (the ${limit} s limit, or out of memory)"
    log "$name" "$rc" $((SECONDS - t0)) "$note"
    tail -n 3 "$logfile"
    return 0
}

# Each part of the kit unpacks into .device-site/ once (a marker per part, with the archive's size).
unpack() {
    local archive part
    for archive in "$KIT"/*.tar.xz; do
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

STEPS="preflight check_gpu_bf16 benchmark_profile check_gpu_fp16 benchmark_no-gc benchmark_8x2 benchmark_padding-free benchmark_fp16"
for name in $ONLY; do
    [[ " $STEPS " == *" $name "* ]] || { echo "ONLY: unknown step '$name'; the steps are: $STEPS" >&2; exit 2; }
done

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
    "$PY" -c 'import platform, sys, torch; print("python", platform.python_version(), sys.executable, sys.prefix);
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1
    "$PY" scripts/device_kit.py --check "$SITE" 2>&1  # where each module is imported from; CONFLICT lines
    command -v cc gcc make || echo "missing from PATH: one of cc, gcc, make"
    df -h "$ROOT" /tmp 2>&1
}

if [ "$MODE" = dict ]; then
    machine >"$OUT/machine.txt" 2>&1
    step preflight 5 60 "$OUT/preflight.txt" "$PY" -m utils.preflight
    exit 0
fi

if [ "$DRY_RUN" = 1 ]; then log machine dry-run 0; else
    t0=$SECONDS; machine >"$OUT/machine.txt" 2>&1; log machine $? $((SECONDS - t0))
fi
mkdir -p "$WORK"
step preflight 5 60 "$OUT/preflight.txt" "$PY" -m utils.preflight --json "$WORK/preflight.json"

if [ "$REHEARSAL" = 1 ]; then  # the benchmark's own CPU smoke settings (tests/test_benchmarks.py)
    PROFILE=cpu
    SHAPE=(--shape tiny-test --profile cpu --steps 2 --warmup-steps 1 --gen-prompts 4 --gen-single 2 --gen-new-tokens 8
           --set n_train=24 --set max_length=256)
else
    PROFILE=gpu
    SHAPE=()
fi
BENCH=(--out "$OUT/benchmark.json" --work-dir "$WORK/benchmarks")
# The Makefile's check-gpu line with this machine's Python; setup's stamp is taken as made (-o): no venv here.
# Where the image has no make, the same line by hand (tests/test_device_kit.py holds the two equal).
if command -v make >/dev/null; then
    CHECK_GPU=(make --no-print-directory -o .venv/.installed check-gpu BIN="$SITE/bin" CHECK_GPU_PROFILE=$PROFILE)
    check_gpu_out() { echo "CHECK_GPU_OUT=$1"; }
else
    CHECK_GPU=(env HF_HUB_OFFLINE=1 WORKSHOP_PROFILE=$PROFILE WORKSHOP_BASE_MODEL="$ROOT/models/tiny-ja-mistral"
               "$SITE/bin/python" -m pytest notebooks --nbmake --nbmake-timeout=1200 -p no:cacheprovider --durations=8)
    check_gpu_out() { echo "WORKSHOP_OUTPUT_DIR=$1"; }
fi

if [ -f "$SITE/.dict.done" ]; then
    # leaves the 7B benchmark at least 200 s (building, saving and loading the 7B shape come first)
    step check_gpu_bf16 60 $(( $(left) - 200 > 240 ? 240 : $(left) - 200 )) "$OUT/check_gpu_bf16.log" \
        env "$(check_gpu_out "$WORK/check-gpu-bf16")" "${CHECK_GPU[@]}"
else
    log check_gpu_bf16 skipped 0 "the dict part (call 1) is missing: ROUGE needs MeCab's dictionary"
fi
step benchmark_profile 60 270 "$OUT/benchmark.log" "$PY" benchmarks/gpu_qlora.py --variants profile "${SHAPE[@]}" "${BENCH[@]}"
if [ "$REHEARSAL" = 1 ]; then
    log check_gpu_fp16 skipped 0 "rehearsal: fp16 compute is a GPU path"
elif [ -f "$SITE/.dict.done" ]; then
    step check_gpu_fp16 60 240 "$OUT/check_gpu_fp16.log" \
        env WORKSHOP_COMPUTE_DTYPE=float16 "$(check_gpu_out "$WORK/check-gpu-fp16")" "${CHECK_GPU[@]}"
else
    log check_gpu_fp16 skipped 0 "the dict part (call 1) is missing: ROUGE needs MeCab's dictionary"
fi
for variant in no-gc 8x2 padding-free fp16; do
    step "benchmark_$variant" 45 120 "$OUT/benchmark.log" "$PY" benchmarks/gpu_qlora.py --variants "$variant" --no-generation \
        "${SHAPE[@]}" "${BENCH[@]}"
done

# The notebooks' JSON results and the preflight's JSON in one file: a call brings back 8 files at most.
(cd "$WORK" && find check-gpu-* preflight.json -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.csv' \
    -o -name '*.txt' \) ! -name 'tokenizer*' ! -path '*/splits/*' ! -path '*/checkpoint-*' -size -4096k 2>/dev/null |
    tar -czf "$OUT/check_gpu_outputs.tar.gz" -T -)
log total 0 $((SECONDS - START)) "files: $(ls "$OUT" | tr '\n' ' ')"
cat "$SUMMARY"
