#!/usr/bin/env bash
# One GPU pass for every family, about 7 minutes on one H100: correctness checks, then the mini-vs-HF benchmarks.
#
#   bash benchmarks/gpu_check.sh            # from the repo root (or anywhere: it cd's to the repo)
#   bash benchmarks/gpu_check.sh memory     # instead: gpu_memory.py for the peak-memory rows (compiled GPT,
#                                           # BERT, Marian), each step's table in its log (never run on a GPU yet)
#
# The device image ships an older transformers (5.17); the models need >= 5.24 (the `cache` kwarg; the package asks
# for 5.25, whose Trainer resumes streams, but 5.25 also needs huggingface-hub >= 2.4, not on the image). Put the
# wheel in .whl/ (`pip download --no-deps --only-binary=:all: -d .whl transformers==5.24.0`) and carry `.whl`:
# it is installed into /tmp/site first. Every step has its own timeout (sum < 565 s: seq2seq needed 70 s on an H100,
# so each family has 120 s), writes a log under $OUT (or /tmp/gpu_check) and the script ends with a compact summary.
# Measured on one H100 (2026-11-28): about 4.5 min of steps. Missing bench_<family>.py are skipped.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOGS=${OUT:-/tmp/gpu_check}
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if ! $PY -c "import sys, transformers; v = tuple(int(x) for x in transformers.__version__.split('.')[:2]); sys.exit(v < (5, 24))"; then
    echo "transformers >= 5.24 is needed (found $($PY -c 'import transformers; print(transformers.__version__)')): carry .whl" >&2
    exit 2
fi

SUMMARY=()
step() {  # step NAME SECONDS command...: run with a timeout, log to $LOGS/NAME.log, remember rc and time
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name (limit ${limit}s)"
    timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    local status=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status="TIMEOUT"
    [ $rc -ne 0 ] && [ "$status" = ok ] && status="FAILED rc=$rc"
    SUMMARY+=("$(printf '%-22s %-14s %4ss' "$name" "$status" $((SECONDS - start)))")
    grep -v -i -E "warning|it/s\]|^\s*$" "$LOGS/$name.log" | tail -n 25
}

if [ "${1:-}" = memory ]; then  # `bash benchmarks/gpu_check.sh memory`: why the peak-memory rows differ (gpu_memory.py)
    step memory-gpt-compiled 300 $PY benchmarks/gpu_memory.py --family gpt --compile --rows 18
    step memory-encoder 120 $PY benchmarks/gpu_memory.py --family encoder --rows 18
    step memory-seq2seq 120 $PY benchmarks/gpu_memory.py --family seq2seq --rows 18
    printf '%s\n' "${SUMMARY[@]}"
    exit 0
fi
step correctness 110 $PY benchmarks/gpu_correctness.py
step bench-gpt 80 $PY benchmarks/run.py --device cuda --family gpt
step bench-gpt-compiled 130 $PY benchmarks/run.py --device cuda --family gpt --compile --no-generate
# The issues' rows first; GPU_CHECK_EXTRA=1 adds the families no issue asks for (about 2 more minutes).
families="encoder seq2seq"
[ "${GPU_CHECK_EXTRA:-0}" = 1 ] && families="$families llama modernbert t5"
for family in $families; do
    if [ -f "benchmarks/bench_$family.py" ]; then
        step "bench-$family" 120 $PY benchmarks/run.py --device cuda --family "$family"
    else
        SUMMARY+=("$(printf '%-22s %-14s' "bench-$family" "skipped (no benchmarks/bench_$family.py)")")
    fi
done

echo
echo "================ summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
printf '%s\n' "${SUMMARY[@]}"
echo "--- correctness"
grep -E "^(PASS|FAIL|SKIP|correctness:)" "$LOGS/correctness.log"
echo "--- benchmark rows (ratio = mini / HF; MFU = 6N + 12 L H Q T FLOPs per token at 989 TFLOP/s)"
for log in "$LOGS"/bench-*.log; do
    [ -f "$log" ] && grep -E "tokens/s|memory|max abs diff" "$log"
done
