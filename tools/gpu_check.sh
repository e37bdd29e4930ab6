#!/usr/bin/env bash
# The whole GPU check in one command, on a GPU machine without network (benchmarks/README.md, "On your GPU"):
#   tools/gpu_check.sh OUTDIR
# Steps, in order, each time-bounded from one budget and never fatal (a failing step is logged, the next runs):
#   env        nvidia-smi -L, driver, torch / triton / nvcc and package versions       -> OUTDIR/env.txt
#   build      the extension in place for this card's arch (pip install -e)
#   errors     the C++ error-path tests, every one in this one process (EFFKERNELS_TEST_CHILD=1): a C++
#              exception that crashes the process (the private-libstdc++ crash of 2026-11-28) shows here
#   tests      pytest on CUDA (EFFKERNELS_GPU_TESTS, only the cuda and triton parameters: CI runs the rest),
#              and alongside it, as neither is timed,
#   sanitizer  compute-sanitizer --tool memcheck over one small call of every op, CUDA and Triton backends
#              (tools/sanitize_ops.py)
#   tune       python -m effkernels.tune within its budget: the config table of this GPU -> OUTDIR/<device>.json
#   sweep      benchmarks/run.py with the tuned table           -> OUTDIR/bench.json, report.md, plot.png
#   summary    printed last (only the tail of the output may be seen); everything is also in OUTDIR/log.txt
# Settings (effkernels/_config.py, README's table): EFFKERNELS_GPU_CHECK_SECONDS (the budget),
# EFFKERNELS_GPU_CHECK_DRY_RUN=1 (print the steps and their limits, run nothing), EFFKERNELS_GPU_CHECK_SKIP
# (steps to leave out, e.g. build,errors,tests,sanitizer to rerun tune and sweep), EFFKERNELS_GPU_TESTS(_SECONDS),
# EFFKERNELS_GPU_TUNE_ARGS / _SECONDS, EFFKERNELS_GPU_SWEEP_ARGS / _RUN_ARGS.
# Budget: a step gets at most its cap, and never more than the budget left after the floors of the steps after it
# (FLOOR below, each plus GRACE) and the summary; a step that would get less than its own floor is skipped.
# SIGINT at its limit, SIGKILL GRACE seconds later. The dry run charges each step its limit plus GRACE: the
# worst case, which still ends within the budget.
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
# The settings, read by path: the package may not be built yet.
SETTINGS=$($PY "$REPO/effkernels/_config.py" --shell EFFKERNELS_GPU_) || exit 2
eval "$SETTINGS"
TOTAL=$EFFKERNELS_GPU_CHECK_SECONDS
DRY=$EFFKERNELS_GPU_CHECK_DRY_RUN
SKIP=",$EFFKERNELS_GPU_CHECK_SKIP,"
GRACE=10            # SIGKILL this long after a step's SIGINT
SUMMARY=15          # seconds kept for the summary
ORDER=(build errors tests tune sweep)
# The least time worth giving a step: the sweep's limit covers run.py's --budget + 60 s + a margin of 10.
declare -A FLOOR=([build]=60 [errors]=20 [tests]=30 [tune]=45 [sanitizer]=20 [sweep]=120)
ERROR_TESTS="error_messages or error_device_mismatch or private_cxx_runtime"
TMPD=$(mktemp -d)
START=$SECONDS
SPENT=0             # dry run: the seconds the steps so far would take at worst
LOG="$OUT/log.txt"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

STEPS=()
record() { STEPS+=("$(printf '%-10s %-34s %5ss' "$1" "$2" "$3")"); }
# The dry run counts only the charged limits: real seconds (a second boundary crossed while it prints) would
# shave the later steps' limits, and the tune step, whose limit meets its floor exactly, would be skipped.
now() { if [ "$DRY" = 1 ]; then echo "$SPENT"; else echo $((SECONDS - START + SPENT)); fi; }
left() { echo $((TOTAL - $(now))); }
skipped() { [[ "$SKIP" == *",$1,"* ]]; }
# limit STEP CAP: at most CAP, leaving the floors of the later steps, the summary and the kill grace.
limit() {
    local after=0 reserve=$SUMMARY s l
    for s in "${ORDER[@]}"; do
        [ "$after" = 1 ] && ! skipped "$s" && reserve=$((reserve + FLOOR[$s] + GRACE))
        [ "$s" = "$1" ] && after=1
    done
    l=$(($(left) - reserve - GRACE))
    [ "$l" -gt "$2" ] && l=$2
    echo "$l"
}
# start NAME LIMIT: says whether the step runs (not skipped, enough time), and logs its header.
start() {
    echo
    if skipped "$1"; then
        echo "=== [$1] skipped (EFFKERNELS_GPU_CHECK_SKIP)"; record "$1" "skipped (EFFKERNELS_GPU_CHECK_SKIP)" 0; return 1
    fi
    if [ "$2" -lt "${FLOOR[$1]}" ]; then
        echo "=== [$1] skipped: ${2}s left for it"; record "$1" "skipped (no time left)" 0; return 1
    fi
    return 0
}
finished() {  # NAME LIMIT RC SECONDS
    local how="ok"
    [ "$3" -ne 0 ] && how="FAILED (exit $3)"
    if [ "$3" -eq 124 ] || [ "$3" -eq 137 ] || [ "$3" -eq 130 ]; then how="TIMED OUT after ${2}s"; fi
    [ "$DRY" = 1 ] && how="dry run"
    record "$1" "$how" "$4"
    echo "=== [$1] $how in ${4}s"
}
# run NAME LIMIT CMD...: time-bounded, logged, never fatal.
run() {
    local name=$1 lim=$2 t0=$SECONDS rc=0
    shift 2
    start "$name" "$lim" || return 0
    echo "=== [$name] limit ${lim}s, $(left)s left of ${TOTAL}s: $*"
    if [ "$DRY" = 1 ]; then SPENT=$((SPENT + lim + GRACE)); else timeout -s INT -k "$GRACE" "$lim" "$@"; rc=$?; fi
    finished "$name" "$lim" "$rc" $((SECONDS - t0))
}
# bg NAME LIMIT CMD...: like run, in the background (for steps that time nothing); its output joins the log
# at wait_bg, which the dry run charges the group's limit.
BG=()
GROUP_START=0
bg() {
    local name=$1 lim=$2
    shift 2
    start "$name" "$lim" || return 0
    GROUP_START=$(now)
    echo "=== [$name] in the background, limit ${lim}s, $(left)s left of ${TOTAL}s: $*"
    ( t0=$SECONDS; rc=0
      [ "$DRY" = 1 ] || { timeout -s INT -k "$GRACE" "$lim" "$@" > "$TMPD/$name.out" 2>&1; rc=$?; }
      echo "$rc $((SECONDS - t0))" > "$TMPD/$name.rc" ) &
    BG+=("$name:$!:$lim")
}
wait_bg() {
    local e name pid lim rc secs
    for e in "${BG[@]}"; do
        IFS=: read -r name pid lim <<< "$e"
        wait "$pid"
        echo
        echo "=== [$name] output:"
        [ -f "$TMPD/$name.out" ] && cat "$TMPD/$name.out"
        read -r rc secs < "$TMPD/$name.rc"
        finished "$name" "$lim" "$rc" "$secs"
        [ "$DRY" = 1 ] && [ $((lim + GRACE)) -gt $(($(now) - GROUP_START)) ] && SPENT=$((SPENT + lim + GRACE - ($(now) - GROUP_START)))
    done
    BG=()
}
# the lines of one step's output in the log: from its "limit" (or, in the background, "output:") line to its end line
section() {
    awk -v s="=== [$1] " 'index($0, s "limit ") == 1 || index($0, s "output:") == 1 {on = 1; next}
                          index($0, s) == 1 {on = 0} on' "$LOG"
}

echo "=== effkernels GPU check: budget ${TOTAL}s$([ "$DRY" = 1 ] && echo ', DRY RUN: nothing is run')"

# ---- env -------------------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "git: $(git -C "$REPO" rev-parse HEAD 2>/dev/null) $(git -C "$REPO" status --short 2>/dev/null | wc -l) changed file(s)"
    echo "--- nvidia-smi -L"; timeout 20 nvidia-smi -L 2>&1
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    echo "--- nvcc"; (timeout 20 nvcc --version 2>&1 || timeout 20 "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>&1) | tail -2
    echo "--- python"
    if [ "$DRY" = 1 ]; then echo "(dry run: not probed)"; else timeout 90 $PY - <<'EOF' 2>&1
import importlib, platform, torch
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
for m in ("triton", "torchvision", "timm", "pytest", "pytest_benchmark", "hypothesis", "matplotlib", "numpy"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:  # noqa: BLE001
        print(m, "NOT AVAILABLE:", type(e).__name__, e)
EOF
    fi
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
record env ok $((SECONDS - START))

# ---- build -----------------------------------------------------------------------------------------
ARCH=9.0
[ "$DRY" = 1 ] || ARCH=$(timeout 60 $PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null || echo "9.0")
export TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=${MAX_JOBS:-16} PIP_DISABLE_PIP_VERSION_CHECK=1
run build "$(limit build 150)" $PY -m pip install --no-build-isolation --no-deps --no-index -v -e "$REPO"
if [ "$DRY" != 1 ]; then
    timeout 60 $PY -c "import effkernels; [print(f'  backend {k:6s} {\"yes\" if ok else \"no \"} {why}') for k, (ok, why) in effkernels.backends_available().items()]" 2>&1
    SO=$(timeout 60 $PY -c "import effkernels._C as m; print(m.__file__)" 2>/dev/null) && echo "  libstdc++ of _C.so: $(ldd "$SO" | grep -o 'libstdc++[^ ]*' || echo 'none linked (a private static copy?)')"
fi

# ---- errors, tests (+ sanitizer alongside) --------------------------------------------------------------
PYTEST=($PY -m pytest -q -rf -p no:cacheprovider --continue-on-collection-errors)
run errors "$(limit errors 45)" env EFFKERNELS_TEST_CHILD=1 "${PYTEST[@]}" tests -k "$ERROR_TESTS"
LIM=$(limit tests "$EFFKERNELS_GPU_TESTS_SECONDS")
SAN=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/compute-sanitizer /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$SAN" ] || [ "$DRY" = 1 ]; then
    bg sanitizer "$LIM" "${SAN:-compute-sanitizer}" --tool memcheck --error-exitcode 1 --print-limit 20 $PY "$REPO/tools/sanitize_ops.py"
else
    echo "=== [sanitizer] skipped: compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda*/bin)"
    record sanitizer "skipped (not installed)" 0
fi
# shellcheck disable=SC2086  # a list of pytest arguments
run tests "$LIM" "${PYTEST[@]}" -m "cuda or triton" --maxfail=25 $EFFKERNELS_GPU_TESTS
wait_bg

# ---- tune ------------------------------------------------------------------------------------------
# The tuner stops at its budget and writes what it has; 25 s of the limit are for the key in flight and the write.
LIM=$(limit tune $((EFFKERNELS_GPU_TUNE_SECONDS + 25)))
# shellcheck disable=SC2086  # a list of options
run tune "$LIM" $PY -m effkernels.tune $EFFKERNELS_GPU_TUNE_ARGS --budget $((LIM - 25))
if [ "$DRY" != 1 ] && ! skipped tune; then
    TABLE=$(timeout 60 $PY -c "import torch; from effkernels import tune; print(tune.default_path(torch.device('cuda')))" 2>/dev/null)
    if [ -f "$TABLE" ]; then cp "$TABLE" "$OUT/"; else echo "no config table written ($TABLE)"; fi
fi

# ---- sweep -----------------------------------------------------------------------------------------
# run.py ends by its --budget + 60 s and always renders what it measured.
LIM=$(limit sweep 100000)
# shellcheck disable=SC2086  # lists of options
run sweep "$LIM" $PY "$REPO/benchmarks/run.py" --out "$OUT" $EFFKERNELS_GPU_SWEEP_RUN_ARGS --budget $((LIM - 70)) \
    -- $EFFKERNELS_GPU_SWEEP_ARGS

# ---- summary (last) --------------------------------------------------------------------------------
echo
echo "================ effkernels GPU check: summary ================"
grep -m1 '^date:' "$OUT/env.txt"
grep -m1 '^GPU 0' "$OUT/env.txt" || echo "GPU: nvidia-smi lists none"
grep -E '^(torch|triton) ' "$OUT/env.txt"
printf '%s\n' "${STEPS[@]}"
for s in errors tests; do
    line=$(section "$s" | grep -E '[0-9]+ (passed|failed|error|deselected)|no tests ran' | tail -1)
    [ -n "$line" ] && printf '%-10s %s\n' "$s:" "$line"
done
section sanitizer | grep -E '^sanitize_ops: .*(FAILED|NON-FINITE)|ERROR SUMMARY' | tail -6
section tune | sed -n '/^tune: wrote /,$p' | head -12
if [ -f "$OUT/bench.json" ] && [ "$DRY" != 1 ]; then
    timeout 60 $PY "$REPO/benchmarks/report.py" "$OUT/bench.json" --out "$OUT" --summary 2>&1 | grep -v "^report: "
else
    echo "no benchmark results (see $LOG)"
fi
FILES=$(cd "$OUT" && ls)
echo "files ($(echo "$FILES" | grep -c .), the device tool returns 8 at most): $(echo $FILES)"
echo "total $(now)s of ${TOTAL}s$([ "$DRY" = 1 ] && echo ' (dry run: the steps charged at their limits)')"
rm -rf "$TMPD"
exec 1>&- 2>&-
wait "$TEE_PID"
