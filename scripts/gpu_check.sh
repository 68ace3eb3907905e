#!/usr/bin/env bash
# The GPU figures in the README, in one go: `scripts/gpu_check.sh OUT_DIR [--shrink]`.
#
# Runs from a source checkout (PYTHONPATH=.) with torch, transformers, numpy, pandas, matplotlib,
# scipy, tabulate, click, rich, safetensors and tokenizers: no OpenCompass is needed. Every log and
# bench record lands in OUT_DIR; the first hard failure stops the script with the step's name and
# the tail of its log. Budget: under 8 minutes on one H100/H200; the optional baseline shapes run
# only while time is left.
#
# --shrink dry-runs every step on a CPU: a tiny checkpoint with Ruyi-7B's layer structure instead of
# the 7B shapes, fp32, short prompts and generations. It checks the script, not the figures.
set -euo pipefail

out=${1:?usage: scripts/gpu_check.sh OUT_DIR [--shrink]}
shrink=${2:-}
if [[ -n $shrink && $shrink != --shrink ]]; then
    echo "gpu_check: unknown flag '$shrink'; the only flag is --shrink" >&2
    exit 2
fi
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
budget=${GPU_CHECK_BUDGET_S:-480}
py=${PYTHON:-python}

step() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*"
    if ! "$@" >"$out/$name.log" 2>&1; then
        tail -n 40 "$out/$name.log" >&2
        echo "gpu_check: step '$name' failed after $((SECONDS - t0)) s; the whole log is $out/$name.log" >&2
        exit 1
    fi
    echo "   ok in $((SECONDS - t0)) s ($((SECONDS)) s so far)"
}

# The test files that hold GPU tests: the others need OpenCompass, which the GPU machine lacks.
mapfile -t gpu_files < <(grep -rl --include='test_*.py' 'pytest.mark.gpu' tests | sort)
if [[ -n $shrink ]]; then
    tiny=$out/tiny-ruyi-7b
    [[ -d $tiny ]] || step make-tiny "$py" -m evalkit make-tiny "$tiny" --like ruyi-7b
    shape=(--model "$tiny")
    sizes=(--device cpu --dtype fp32 --prompt-len 16 --gen-len 8)
    gpu_tests=(-m "gpu or not gpu" "${gpu_files[@]}")
    prof=(--model "$tiny" --device cpu --dtype fp32 --mode eager --prompt-len 16 --steps 2)
else
    shape=(--shape ruyi-7b --random-weights)
    sizes=(--device cuda --dtype bf16)
    gpu_tests=(-m gpu "${gpu_files[@]}")
    prof=(--shape ruyi-7b --device cuda --dtype bf16 --mode compile)
fi

step env "$py" -c '
import platform, shutil, subprocess, torch, transformers
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name())
if shutil.which("nvidia-smi"):
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
'
cat "$out/env.log"

# 1. CUDA-graph and compiled decoding equal eager, on the device.
step pytest-gpu "$py" -m pytest -q -p no:cacheprovider "${gpu_tests[@]}"

# 2, 5. Both backends at batch 1, interleaved, with the attained copy bandwidth.
step bench-b1 "$py" -m evalkit bench "${shape[@]}" "${sizes[@]}" --batch-sizes 1 --iterations 5 --time-budget 20 \
    --out "$out/bench-b1"

# 3. The same at the VRAM-by-batch sizes.
step bench-batches "$py" -m evalkit bench "${shape[@]}" "${sizes[@]}" --batch-sizes 4,16,32 --iterations 3 \
    --time-budget 10 --out "$out/bench-batches"

# Where the time of one decode step goes (kernels per step, time per kernel): read it before changing
# code if a branch misses the bandwidth target.
for branch in first last; do
    step "profile-$branch" "$py" scripts/profile_step.py "${prof[@]}" --branch "$branch" --out "$out/profile-$branch"
done

# 4. Shared trunk: all five branches scored / decoded together against the last alone.
step shared-trunk "$py" -m evalkit bench --shared-trunk "${shape[@]}" "${sizes[@]}" --iterations 5 \
    --time-budget 30 --e2e-suite none --out "$out/shared-trunk"

# Self-speculative decoding: each shallower branch drafts for the last, against the last alone. Random
# weights make the branches disagree, so this times the draft-and-verify machinery at its worst case.
step speculative "$py" -m evalkit bench --speculative "${shape[@]}" "${sizes[@]}" --k 2,4 --iterations 5 --time-budget 30 \
    --out "$out/speculative"

# 6. The baseline shapes at batch 1, while the budget lasts.
if [[ -z $shrink ]]; then
    for base in qwen2.5-7b llama-3.1-8b qwen3-8b yi-6b yi-9b yi-34b; do
        if ((SECONDS > budget - 60)); then
            echo "== $base: skipped, $((budget - SECONDS)) s of the ${budget} s budget left"
            continue
        fi
        step "baseline-$base" "$py" -m evalkit bench --shape "$base" --random-weights "${sizes[@]}" \
            --batch-sizes 1 --backend fast --iterations 3 --time-budget 10 --out "$out/baseline-$base"
    done
fi

echo "gpu_check: done in $SECONDS s; records under $out/*/bench.json"
