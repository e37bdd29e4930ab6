#!/usr/bin/env bash
# The whole GPU check in one command, for a GPU machine without network (see ../docs and README.md):
#   benchmarks/gpu_check.sh OUTDIR
# 1 env: nvidia-smi -L, torch / triton / nvcc versions          -> OUTDIR/env.txt
# 2 build the extension in place for this card's arch (pip -e)
# 3 pytest on CUDA: the test files that exercise the kernels (the rest runs in CI); alongside it, as
#   neither is timed: 3b which C++ exceptions crash here (benchmarks/unwind_probe.sh: the H200 error-path
#   SIGSEGV) and 4 compute-sanitizer --tool memcheck on one small call per CUDA op (benchmarks/sanitize_ops.py)
# 5 the benchmark sweep under a time budget                      -> OUTDIR/bench.json, report.md, plot.png
# 5b B0's two heaviest blocks at batch 1 and 128: the CUDA whole-block op vs the Triton block vs eager
#                                                               -> OUTDIR/report-blocks-b1.md, report-blocks-b128.md
# 6 a summary table, printed last                               -> everything also in OUTDIR/log.txt
# Every step has its own time limit taken from one overall budget (EFFKERNELS_GPU_CHECK_SECONDS, default 450),
# a failing step is logged and the script goes on, so it always reaches the report and the summary.
# EFFKERNELS_GPU_CHECK_DRY_RUN=1 prints the commands instead of running them (a check of this script's logic);
# EFFKERNELS_GPU_CHECK_SKIP=build,tests,unwind,sanitizer,sweep,blocks-b1,blocks-b128 (any of them) leaves steps out, e.g. to rerun the sweep.
# EFFKERNELS_GPU_SWEEP_RUN_ARGS (run.py's own options, default "--mode full") and EFFKERNELS_GPU_SWEEP_ARGS (pytest's) shape the sweep;
# EFFKERNELS_GPU_TESTS_SECONDS caps the tests (default 100).
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
PY=${PYTHON:-python}
TOTAL=${EFFKERNELS_GPU_CHECK_SECONDS:-450}
DRY=${EFFKERNELS_GPU_CHECK_DRY_RUN:-0}
SKIP=",${EFFKERNELS_GPU_CHECK_SKIP:-},"
# The sweep: full mode (bf16, batch 32 as the issues ask, phi 0..7) with the heaviest depthwise shape and stage-first block
# per phi, so the budget reaches as many phi as it can (cases run phi by phi; see benchmarks/README.md).
SWEEP_ARGS=${EFFKERNELS_GPU_SWEEP_ARGS:---bench-batch 32 --bench-op-shapes 1 --bench-blocks 1 --bench-case-time 0.2}
SWEEP_RUN_ARGS=${EFFKERNELS_GPU_SWEEP_RUN_ARGS:---mode full}
TMPD=$(mktemp -d)
START=$SECONDS
LOG="$OUT/log.txt"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

STEPS=()
record() { STEPS+=("$(printf '%-10s %-28s %5ss' "$1" "$2" "$3")"); }
left() { echo $((TOTAL - (SECONDS - START))); }
# limit CAP RESERVE: a step's limit: at most CAP seconds, leaving RESERVE seconds for the steps after it.
limit() {
    local l=$(( $(left) - $2 ))
    [ "$l" -gt "$1" ] && l=$1
    [ "$l" -lt 10 ] && l=10
    echo "$l"
}
# run NAME LIMIT CMD...: time-bounded (SIGINT at the limit, SIGKILL 45 s later), logged, never fatal.
run() {
    local name=$1 lim=$2 t0=$SECONDS rc
    shift 2
    echo
    skipped "$name" && return 0
    echo "=== [$name] limit ${lim}s, $(left)s left of ${TOTAL}s: $*"
    rc=0
    [ "$DRY" = 1 ] || { timeout -s INT -k 45 "$lim" "$@"; rc=$?; }
    finished "$name" "$lim" "$rc" $((SECONDS - t0))
}
# bg NAME LIMIT CMD...: like run, in the background, for steps that time nothing; its output joins the
# log at wait_bg.
BG=()
bg() {
    local name=$1 lim=$2
    shift 2
    skipped "$name" && return 0
    echo "=== [$name] limit ${lim}s, $(left)s left of ${TOTAL}s: $*" > "$TMPD/$name.out"
    ( t0=$SECONDS; rc=0
      [ "$DRY" = 1 ] || { timeout -s INT -k 20 "$lim" "$@" >> "$TMPD/$name.out" 2>&1; rc=$?; }
      echo "$rc $((SECONDS - t0))" > "$TMPD/$name.rc" ) &
    BG+=("$name:$!:$lim")
}
wait_bg() {
    local e name pid lim rc secs
    for e in "${BG[@]}"; do
        IFS=: read -r name pid lim <<< "$e"
        wait "$pid"
        echo
        cat "$TMPD/$name.out"
        read -r rc secs < "$TMPD/$name.rc"
        finished "$name" "$lim" "$rc" "$secs"
    done
    BG=()
}
skipped() {
    [[ "$SKIP" == *",$1,"* ]] || return 1
    echo "=== [$1] skipped (EFFKERNELS_GPU_CHECK_SKIP)"
    record "$1" "skipped (EFFKERNELS_GPU_CHECK_SKIP)" 0
}
finished() {  # NAME LIMIT RC SECONDS
    local how="ok"
    [ "$3" -ne 0 ] && how="FAILED (exit $3)"
    [ "$3" -eq 124 ] || [ "$3" -eq 137 ] && how="TIMED OUT after ${2}s"
    record "$1" "$how" "$4"
    echo "=== [$1] $how in ${4}s"
}

# ---- 1. environment -------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname)"
    echo "git: $(git -C "$REPO" rev-parse HEAD 2>/dev/null) $(git -C "$REPO" status --short 2>/dev/null | wc -l) changed file(s)"
    echo "--- nvidia-smi -L"; timeout 20 nvidia-smi -L 2>&1
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    echo "--- nvcc"; (timeout 20 nvcc --version 2>&1 || timeout 20 "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>&1) | tail -2
    echo "--- python"
    timeout 90 $PY - <<'EOF' 2>&1
import importlib, platform, torch
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
for m in ("triton", "torchvision", "timm", "pytest", "pytest_benchmark", "hypothesis", "matplotlib", "numpy"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:  # noqa: BLE001
        print(m, "NOT AVAILABLE:", type(e).__name__, e)
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
record env ok $((SECONDS - START))

# ---- 2. build -------------------------------------------------------------------------------------
ARCH=$(timeout 60 $PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null || echo "9.0")
export TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=${MAX_JOBS:-16} PIP_DISABLE_PIP_VERSION_CHECK=1
run build "$(limit 210 200)" $PY -m pip install --no-build-isolation --no-deps --no-index -v -e "$REPO"
timeout 60 $PY -c "import effkernels; [print(f'  backend {k:6s} {\"yes\" if ok else \"no \"} {why}') for k, (ok, why) in effkernels.backends_available().items()]" 2>&1

# ---- 3. tests, and alongside them 3b C++ exceptions and 4 compute-sanitizer ---------------------------
# The files that exercise CUDA, the C++/CUDA extension's first; the rest of tests/ is device-independent and runs in CI.
GPU_TESTS="test_extension.py test_mbconv.py test_dwconv_bn_act.py test_squeeze_excite.py test_pointwise_conv.py test_nn.py test_convert.py"
LIM=$(limit "${EFFKERNELS_GPU_TESTS_SECONDS:-100}" 150)
bg unwind "$LIM" bash "$REPO/benchmarks/unwind_probe.sh"
SAN=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/compute-sanitizer /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SAN" ]; then
    bg sanitizer "$LIM" "$SAN" --tool memcheck --error-exitcode 1 --print-limit 20 $PY "$REPO/benchmarks/sanitize_ops.py"
else
    echo "=== [sanitizer] skipped: compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda*/bin)"
    record sanitizer "skipped (not installed)" 0
fi
# shellcheck disable=SC2046,SC2086
run tests "$LIM" $PY -m pytest -q -rf --maxfail=25 -p no:cacheprovider $(for f in $GPU_TESTS; do echo "$REPO/tests/$f"; done)
wait_bg

# ---- 5. benchmark sweep ---------------------------------------------------------------------------
# run.py splits its budget over its two passes (soft budget inside pytest, hard limit 60 s later) and
# always renders what it has; the outer limit here is a last guard.
RESERVE=10  # for the summary, and 70 s for each blocks step that runs
for B in 1 128; do [[ "$SKIP" == *",blocks-b$B,"* ]] || RESERVE=$((RESERVE + 70)); done
SWEEP_LIMIT=$(limit 100000 "$RESERVE")
SWEEP_BUDGET=$((SWEEP_LIMIT - 70))
[ "$SWEEP_BUDGET" -lt 30 ] && SWEEP_BUDGET=30
# shellcheck disable=SC2086  # SWEEP_RUN_ARGS and SWEEP_ARGS are lists of options
run sweep "$SWEEP_LIMIT" $PY "$REPO/benchmarks/run.py" --out "$OUT" $SWEEP_RUN_ARGS --budget "$SWEEP_BUDGET" -- $SWEEP_ARGS

# ---- 5b. blocks at batch 1 and 128 -----------------------------------------------------------------
# Only their report.md comes back (the device tool returns at most 8 files from OUTDIR).
for B in 1 128; do
    run "blocks-b$B" "$(limit 65 20)" $PY "$REPO/benchmarks/run.py" --out "$OUT/blocks-b$B" --levels block \
        --providers eager,effkernels-triton,effkernels-cuda --budget 40 -- --bench-phi 0 --bench-blocks 2 --bench-batch "$B"
    [ -f "$OUT/blocks-b$B/report.md" ] && mv "$OUT/blocks-b$B/report.md" "$OUT/report-blocks-b$B.md"
    rm -rf "$OUT/blocks-b$B"
done

# ---- 6. summary (last) ----------------------------------------------------------------------------
echo
echo "================ effkernels GPU check: summary ================"
# the lines of one step's output in the log
section() { awk -v s="=== [$1] limit" -v e="=== [$1] " 'index($0, s) == 1 {on = 1; next} on && index($0, e) == 1 {on = 0} on' "$LOG"; }
grep -m1 '^date:' "$OUT/env.txt"
grep -m1 '^GPU 0' "$OUT/env.txt" || echo "GPU: nvidia-smi lists none"
grep -E '^(torch|triton) ' "$OUT/env.txt"
printf '%s\n' "${STEPS[@]}"
TESTS_LINE=$(section tests | grep -E '[0-9]+ (passed|failed|error)|no tests ran' | tail -1)
[ -n "$TESTS_LINE" ] && echo "tests:     $TESTS_LINE"
section unwind | grep -E '^(== |rc=)' | paste -d' ' - - | sed 's/^== /unwind:    /'
section sanitizer | grep -E '^sanitize_ops: .*(FAILED|NON-FINITE)|ERROR SUMMARY' | tail -4
if [ -f "$OUT/bench.json" ] && [ "$DRY" != 1 ]; then
    timeout 60 $PY "$REPO/benchmarks/report.py" "$OUT/bench.json" --out "$OUT" --summary 2>&1 | grep -v "^report: "
else
    echo "no benchmark results (see $LOG)"
fi
for B in 1 128; do
    [ -f "$OUT/report-blocks-b$B.md" ] && { echo "blocks at batch $B (report-blocks-b$B.md):"; grep -E '^\| (MBConv|block)' "$OUT/report-blocks-b$B.md" | head -12; }
done
echo "files: $(cd "$OUT" && ls | tr '\n' ' ')"
echo "total $((SECONDS - START))s"
rm -rf "$TMPD"
exec 1>&- 2>&-
wait "$TEE_PID"
