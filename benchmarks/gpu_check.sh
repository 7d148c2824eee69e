#!/usr/bin/env bash
# Issue 34's checks on a lent GPU, in one device run of about 7 minutes (the machine's start not
# counted); every GPU figure in docs/gpu.md for this version comes from here. First, on this
# machine, from the project's root:
#   ../shared/tools/gpu/prepare.sh     (the notebook stack's wheels and Fashion-MNIST into .gpu/)
# then one device run that carries .gpu:
#   bash benchmarks/gpu_check.sh       (timeout_s 600)
# It writes under $OUT: gpu_check.log (everything printed, each part with its exit status),
# precision.json (auto's measured figures per model shape) and sweep_summary.csv (the main job's
# scores). A part that fails is logged and the next one runs.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
log=$OUT/gpu_check.log
cache=/tmp/gan-workbook-cache  # evaluators and features stay out of $OUT (8 files come back)
# shellcheck disable=SC1091
source .gpu/env.sh >"$log" 2>&1 || { echo "no .gpu/env.sh: run ../shared/tools/gpu/prepare.sh first" | tee -a "$log"; exit 1; }
data=(--set "data.root=$GPU_DATA" --set "eval.cache_dir=$cache")

part() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >>"$log"; }
run() {  # run SECONDS COMMAND...: logged, bounded, its status noted
    local limit=$1; shift
    echo "\$ $*" >>"$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "exit $?" >>"$log"
}

part "1. no host synchronisation inside a training step: set_sync_debug_mode('error') over 20 steps"
run 120 python3 benchmarks/gpu_sync_check.py params/quick.yaml params/dcgan64_latent.yaml \
    params/ddpm_fashion.yaml "${data[@]}"

part "2, 6. img/s, bare loop / trainer; auto's row names its measured figures (issue 34's table rows)"
run 100 python3 benchmarks/train_throughput.py params/quick.yaml --steps 300 --variants fp32,auto "${data[@]}"
run 100 python3 benchmarks/train_throughput.py params/quick.yaml --steps 200 --variants fp32,auto \
    "${data[@]}" --set train.batch_size=256
run 120 python3 benchmarks/train_throughput.py params/dcgan64_latent.yaml --steps 150 --variants fp32,auto \
    "${data[@]}"
run 150 python3 benchmarks/train_throughput.py params/ddpm_fashion.yaml --steps 100 --variants fp32,auto \
    "${data[@]}"

part "2. auto's cache: milliseconds per step of each candidate, per model shape"
cp "$cache/precision.json" "$OUT/precision.json" 2>>"$log" && cat "$OUT/precision.json" >>"$log"

part "6. the main job: 6 runs at once (83 s wall at 318ac91)"
start=$SECONDS
run 200 python3 -m gan_core sweep params/sweeps/quick.yaml --jobs 6 --out /tmp/rq "${data[@]}"
echo "main job wall: $((SECONDS - start)) s" >>"$log"
cp /tmp/rq/summary.csv "$OUT/sweep_summary.csv" 2>>"$log"
grep -h '"seconds"' /tmp/rq/*/metrics.json >>"$log" 2>&1
part "done"
