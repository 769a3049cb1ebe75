#!/usr/bin/env bash
# Runs lowbit's benchmarks from an existing build (`make bench` builds first; this script builds nothing).
#   BUILD_DIR=build/release  where the binaries are
#   BENCH_OUT=<dir>          also write JSON results there (one file per benchmark binary)
#   BENCH_FILTER=<regex>     forwarded as --benchmark_filter (default: everything)
#   BENCH_MIN_TIME=<s>       per-benchmark minimum time (default 0.5; the machine limits use more)
#   BENCH_REPS=<n>           repetitions (default 3; the report shows median/stddev/cv)
set -euo pipefail

BUILD_DIR=${BUILD_DIR:-build/release}
MIN_TIME=${BENCH_MIN_TIME:-0.5}
REPS=${BENCH_REPS:-3}
FILTER=${BENCH_FILTER:-.}

run() {  # run NAME BINARY [extra benchmark flags...]
  local name=$1 bin=$2
  shift 2
  if [ ! -x "$bin" ]; then
    echo "bench.sh: $bin not found; run 'make bench' (or build target $name) first" >&2
    exit 1
  fi
  local json=()
  if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    json=(--benchmark_out="$BENCH_OUT/$name.json" --benchmark_out_format=json)
  fi
  echo "== $name =="
  "$bin" --benchmark_filter="$FILTER" --benchmark_min_time="$MIN_TIME" --benchmark_repetitions="$REPS" \
    --benchmark_report_aggregates_only=true "${json[@]}" "$@"
}

echo "== machine =="
lscpu | grep -E 'Model name|^CPU\(s\)|Thread|L2|L3' || true

# Kernels and, in the same process, the machine limits they are judged against (memory bandwidth,
# OpenBLAS sgemm). Weight matrices are cycled through >= 1 GiB of copies, so decode reads DRAM.
run kernels_bench "$BUILD_DIR/bench/kernels_bench"

# Packed quantized-weight kernels (int4 g128, int8, fp8, W8A8) next to dense bf16 at the reference model's and
# Llama-3.1-8B's shapes, the gemv/sgemm crossover of the packed path, and the core's multiply-add peak for each
# instruction mix the kernels use (Machine/Peak/..., the ceiling for the m = 512 rows; docs/PERFORMANCE.md).
run packed_bench "$BUILD_DIR/bench/packed_bench"

# Tokenizer throughput (skips its cases when ../shared is absent).
run tokenizer_bench "$BUILD_DIR/bench/tokenizer_bench"

# End to end: prefill/TTFT, inter-token latency and decode, next to the decode floor (weight bytes / memory
# read bandwidth measured in the same process). The reference model when ../shared has it, else the bundled one.
MODEL=${BENCH_MODEL:-../shared/models/lowbit-ref-100m}
[ -d "$MODEL" ] || MODEL=models/stories260K
for threads in 1 "$(nproc)"; do
  echo "== lowbit bench $MODEL (threads $threads) =="
  if [ -n "${BENCH_OUT:-}" ]; then
    "$BUILD_DIR/lowbit" bench "$MODEL" --prompt-len 512 --gen-len 64 --repeat 3 --threads "$threads" --json \
      | tee "$BENCH_OUT/lowbit_bench_t$threads.json"
  else
    "$BUILD_DIR/lowbit" bench "$MODEL" --prompt-len 512 --gen-len 64 --repeat 3 --threads "$threads"
  fi
done
