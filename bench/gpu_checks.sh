#!/usr/bin/env bash
# The checks to run whenever a GPU machine is at hand, in one go: the tests marked gpu, then
# bench/throughput.py on CUDA (the presets at their own batch, and base at batch 128, the batch of
# NVIDIA's published Tacotron2 throughput), then bench/profile_step.py on a base step at batch
# 128. Each part has its own time limit so one hang cannot take the others with it; results land
# in OUT_DIR/results.jsonl (append them to bench/results.jsonl).
#
#     bash bench/gpu_checks.sh OUT_DIR
set -uo pipefail
out=${1:?usage: bash bench/gpu_checks.sh OUT_DIR}
mkdir -p "$out"
export SMART_TUNER_CACHE=${SMART_TUNER_CACHE:-/tmp/smart-tuner-cache} PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'bf16', torch.cuda.is_bf16_supported())" | tee -a "$out/gpu.txt"
timeout 240 "$python" -m pytest -q -m gpu -p no:cacheprovider tests/trainer/test_gpu.py tests/tuner/test_gpus.py \
    2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
timeout 120 "$python" bench/throughput.py --device cuda --presets tiny,base --steps 20,10 --workdir /tmp/bench \
    --results "$out/results.jsonl" > "$out/throughput.log" 2>&1 || echo "throughput (own batch) failed: see log"
timeout 90 "$python" bench/throughput.py --device cuda --presets tiny,base --steps 10,10 --batch-size 128 \
    --workdir /tmp/bench --results "$out/results.jsonl" >> "$out/throughput.log" 2>&1 \
    || echo "throughput (batch 128) failed: see log"
timeout 150 "$python" bench/profile_step.py --device cuda --preset base --batch-size 128 --steps 5 \
    --workdir /tmp/bench --results "$out/results.jsonl" > "$out/profile.log" 2>&1 || echo "profile_step failed: see log"
tail -5 "$out/throughput.log"
exit "$tests"
