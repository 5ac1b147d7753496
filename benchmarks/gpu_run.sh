#!/usr/bin/env bash
# Runs the GPU benchmarks on the lent device machine (torch + CUDA preinstalled there; the pack's other
# dependencies travel as wheels in .whl/, see the README's Benchmarks section).
#   bash benchmarks/gpu_run.sh motion rewards trainers    -> logs in $OUT (or ./gpu-out)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/gpu.txt"
for what in "$@"; do
  case "$what" in
    motion)   python3 benchmarks/bench_motion.py --device cuda 2>&1 | tee "$OUT/motion.log" ;;
    rewards)  python3 benchmarks/bench_rewards.py --device cuda --flow-method "${REWARDS_FLOW:-dis_medium}" 2>&1 | tee "$OUT/rewards.log" ;;
    trainers) python3 benchmarks/bench_trainers.py --out "$OUT/trainers_metrics.jsonl" 2>&1 | tee "$OUT/trainers.log" ;;
    trainers_compiled) python3 benchmarks/bench_trainers.py --compile default --out "$OUT/trainers_compiled_metrics.jsonl" 2>&1 \
                         | tee "$OUT/trainers_compiled.log" ;;
    rewards_batch) python3 benchmarks/bench_rewards.py --device cuda --flow-method "${REWARDS_FLOW:-dis_medium}" \
                     --batch 8 --size 33x240x416 --repeat 5 2>&1 | tee "$OUT/rewards_batch.log" ;;
    rewards_processes) python3 benchmarks/bench_rewards.py --device cuda --flow-method "${REWARDS_FLOW:-dis_medium}" \
                         --skip-naive --repeat 5 --processes 3 2>&1 | tee "$OUT/rewards_processes.log" ;;
    trainers_reward) python3 benchmarks/bench_trainers.py --grpo --compile default --reward composite \
                       --out "$OUT/trainers_reward_metrics.jsonl" 2>&1 | tee "$OUT/trainers_reward.log" ;;
    dpo_processes) python3 benchmarks/dpo_step_variance.py --size 33x240x416 --compile default --checkpointing 1 \
                     --processes 3 --out "$OUT/dpo_variance" 2>&1 | tee "$OUT/dpo_processes.log" ;;
    resume_fsdp) python3 benchmarks/resume_check.py --device cuda --nproc "${NPROC:-2}" --distributed fsdp \
                   --model "${RESUME_MODEL:-wan2.1_t2v_1.3b}" --size 64 2>&1 | tee "$OUT/resume_fsdp.log" ;;
    *) echo "unknown benchmark $what" ;;
  esac
done
