#!/usr/bin/env bash
# The GPU benchmarks of docs/benchmarks.md in one command, for a machine lent for a short time.
#
#   bench/gpu.sh OUT_DIR [CLONES_DIR] [SECONDS]
#
# Runs, in order of importance, each bounded by what is left of SECONDS (default 540), with its
# output appended to OUT_DIR/log.txt and its JSON packed into OUT_DIR/results.tar after each
# step (so a run cut short keeps what it measured):
#   1. bench/data.py --versus ddrnet23_slim --device cuda, with the decode cache (do the loaders
#      keep up with a step of DDRNet-23-slim at its Cityscapes crop);
#   2. DDRNet-23-slim inference at 1024x2048 in bf16 and fp32, and under torch.compile with CUDA
#      graphs (reduce-overhead; inference graphs only);
#   3. bench/reference.py on CUDA, bf16 and fp32 (official DDRNet, HRNet and UNet code when
#      CLONES_DIR holds clones named DDRNet, HRNet and Pytorch-UNet; transformers when installed);
#   4. a real training run of DDRNet-23-slim with UniMatch on a generated dataset (python -m engine);
#   5. bench/resize.py on CUDA, bf16 (would the CPU's stencil gradient for bilinear upscaling pay there);
#   6. every architecture at 512x1024, bf16, each in its declared memory format.
set -u
out=${1:?usage: bench/gpu.sh OUT_DIR [CLONES_DIR] [SECONDS]}
clones=${2:-}
deadline=$(( $(date +%s) + ${3:-540} ))
python=${PYTHON:-python3}
mkdir -p "$out/json"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run COMMAND for at most SECONDS (or what is left)
    local name=$1 limit=$2 left=$(( deadline - $(date +%s) ))
    shift 2
    (( left < limit )) && limit=$left
    if (( limit < 10 )); then echo "== $name: skipped, no time left" >>"$out/log.txt"; return; fi
    echo "== $name (at most ${limit}s): $*" >>"$out/log.txt"
    local start=$(date +%s)
    timeout --signal=INT --kill-after=5 "$limit" "$@" >>"$out/log.txt" 2>&1
    echo "== $name: exit $? after $(( $(date +%s) - start ))s" >>"$out/log.txt"
    tar -C "$out" -cf "$out/results.tar" json
}

official=()
for pair in ddrnet23_slim:DDRNet hrnetv2_w18_small:HRNet unet:Pytorch-UNet; do
    [[ -n $clones && -d $clones/${pair#*:} ]] && official+=(--official "${pair%%:*}" "$clones/${pair#*:}")
done
demo=$(mktemp -d)/demo  # the training run's data, written on the CPU while the GPU benchmarks run
$python -m engine dataset demo "$demo" --option size=256 --option num_images=480 --option num_unlabeled=480 \
    >"$out/dataset.txt" 2>&1 &
demo_pid=$!
pairs=()
$python -c "import transformers" 2>/dev/null || pairs=(--pairs)

step environment 30 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
    $python -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"cudnn\", torch.backends.cudnn.version())'"
step data-versus-ddrnet 150 $python bench/data.py --versus ddrnet23_slim --device cuda --decode-cache --images 16 \
    --batches 6 --workers 4 8 --json "$out/json/data_versus_cuda_decode_cache.json"
arch=(bench/architectures.py --device cuda --archs ddrnet23_slim --size 1024x2048 --memory-format auto
      --warmup 10 --runs 50)
step ddrnet-1024x2048-bf16 60 $python "${arch[@]}" --amp bf16 --json "$out/json/ddrnet_1024x2048_bf16.json"
step ddrnet-1024x2048-fp32 60 $python "${arch[@]}" --amp off --json "$out/json/ddrnet_1024x2048_fp32.json"
step ddrnet-cuda-graphs 120 $python "${arch[@]}" --amp bf16 --compile reduce-overhead --no-train \
    --json "$out/json/ddrnet_1024x2048_bf16_cuda_graphs.json"
reference=(bench/reference.py --device cuda --size 512x1024 --batch 8 --warmup 5 --runs 20 "${pairs[@]}"
           "${official[@]}")
step reference-bf16 130 $python "${reference[@]}" --amp bf16 --json "$out/json/reference_cuda_bf16.json"
step reference-fp32 130 $python "${reference[@]}" --amp off --json "$out/json/reference_cuda_fp32.json"
step training-run 120 bash -c "wait_for=$demo_pid; while kill -0 \$wait_for 2>/dev/null; do sleep 1; done;
    SEGLAB_DECODE_CACHE=$demo-cache $python -m engine train --data $demo --arch ddrnet23_slim --method unimatch \
    --labeled 1/8 --crop-size 256 --batch-size 8 --iters 400 --eval-every 400 --log-every 100 --optimizer sgd \
    --lr 0.01 --device cuda --out $demo-run --no-resume"
step resize-gradient 60 $python bench/resize.py --device cuda --amp bf16 --archs ddrnet23_slim segformer_b0 \
    deeplabv3plus_r50 --size 512x1024 --batch 8 --warmup 5 --runs 20 --json "$out/json/resize_cuda_bf16.json"
step architectures-512x1024 300 $python bench/architectures.py --device cuda --size 512x1024 --batch 8 \
    --memory-format auto --amp bf16 --warmup 5 --runs 20 --json "$out/json/architectures_cuda.json"
echo "== done" >>"$out/log.txt"
