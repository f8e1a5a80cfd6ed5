#!/usr/bin/env bash
# A latency LUT measured on the target device, brought back for the search.
#
# 1. On the target device (same `pip install` of this package; no data or weights needed, only the config):
#      eftnas-deploy lut measure --model bert-base-uncased --task text-classification \
#        --runtime openvino --threads 4 --seq-len 64 --grid 6 --out lut_target.json
#    (--model also takes a config.json; run `lut validate --lut lut_target.json` there to check it.)
# 2. Copy lut_target.json back and run the pipeline with it; its geometry, runtime and seq len are checked:
#      bash examples/lut_on_target.sh lut_target.json [max-latency-ms] [more eftnas-deploy run options]
set -euo pipefail
LUT=${1:?usage: $0 lut_target.json [max-latency-ms] [run options...]}
BUDGET=${2:-20}
shift $(( $# < 2 ? $# : 2 ))
eftnas-deploy run --config examples/sst2_local.yaml --out "${OUT:-runs/sst2-target}" \
  --lut-file "$LUT" --max-latency-ms "$BUDGET" --set search.max_latency_fraction=null "$@"
