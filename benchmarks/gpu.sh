#!/usr/bin/env bash
# The GPU checks of issue 9, as one script: the CUDA tests, then the benchmarks side by side with torchvision on
# the same card (SSD300 and SSD512 VGG16 at batch 32, SSD300 inference at batch 64, AMP and channels_last).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        (make bench-gpu)
#
# Each step has its own time limit and log, so one failing step leaves the others' figures. The sections are
# written into OUT_DIR/RESULTS.md (a copy of benchmarks/RESULTS.md); copy them back with
# `cp OUT_DIR/RESULTS.md benchmarks/RESULTS.md`. PYTHON picks the interpreter (default: .venv/bin/python, else python3).
set -u
out=${1:-build/gpu}
mkdir -p "$out"
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1
cp benchmarks/RESULTS.md "$out/RESULTS.md"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUT/NAME.log, never stop the script
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T), limit ${limit}s): $*"
    local start=$SECONDS
    timeout -s ABRT -k 10 "$limit" "$@" >"$out/$name.log" 2>&1  # SIGABRT: faulthandler prints where it was
    local rc=$?
    tail -n 25 "$out/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$py" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
} 2>&1 | tee "$out/env.txt"

bench=("$py" -m benchmarks.run --device cuda --results "$out/RESULTS.md")
step tests 120 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_matching.py \
    "tests/test_model.py::test_cuda_with_cpu_targets"
step amp_bf16 240 "${bench[@]}" --amp bf16 --channels-last --models ssd300_voc,ssd512_voc --train-batch 32 \
    --infer-batch 32 --repeats 20 --only encode,detections,train,inference,flops,fit --section bench-cuda-bf16
step infer_b64 90 "${bench[@]}" --amp fp16 --channels-last --models ssd300_voc --infer-batch 64 --repeats 30 \
    --only inference --section bench-cuda-b64
step fp32 120 "${bench[@]}" --models ssd300_voc,ssd512_voc --train-batch 32 --infer-batch 32 --repeats 10 \
    --only train,inference --section bench-cuda-fp32
