#!/usr/bin/env bash
# The single-node check on a real NVIDIA GPU (docs/gpus.md, "On a real GPU"). CI has no GPU and
# does not run it. Needs the NVIDIA driver (nvidia-smi on the host) and Docker, as root:
#
#   test/gpu/check.sh IMAGE [GPU_INDEX]
#
# IMAGE: any image from your registry with a shell (registry-qualified: nothing is pulled from a
# public hub). It starts one container with the flags jobbox's plan gives a job that was
# allocated GPU_INDEX (src/plan/container.ts gpuFlags): that GPU under its own name, the control
# devices the host has, nvidia-smi and the driver's libraries read-only at their own paths,
# CUDA_VISIBLE_DEVICES=0, no capabilities. It passes when `nvidia-smi -L` inside lists exactly
# the host's GPU GPU_INDEX (same UUID), and the host's other GPUs are not listed.
set -euo pipefail
image=${1:?usage: $0 IMAGE [GPU_INDEX]}
index=${2:-0}
die() { echo "gpu-check: $*" >&2; exit 1; }
[[ $image == */* && ${image%%/*} == *[.:]* ]] || die "image must name its registry: $image"
[[ $index =~ ^[0-9]+$ ]] || die "GPU index must be a number: $index"
command -v nvidia-smi >/dev/null || die "no nvidia-smi on this host: no NVIDIA driver"

want=$(nvidia-smi -L | sed -n "/^GPU $index: /p")
[[ -n $want ]] || die "the host has no GPU $index: $(nvidia-smi -L | tr '\n' ' ')"
uuid=$(sed -n 's/.*(UUID: \(GPU-[^)]*\)).*/\1/p' <<<"$want")
# jobbox takes index n as /dev/nvidia<n> (docs/gpus.md, "Index to device"): say so where it is not.
minor=$(nvidia-smi --query-gpu=index,minor_number --format=csv,noheader | awk -F', ' -v i="$index" '$1 == i { print $2 }')
[[ $minor == "$index" ]] || echo "gpu-check: note: GPU $index is /dev/nvidia$minor here, not /dev/nvidia$index; jobbox needs gres.conf File= lines in minor order" >&2

flags=(--device "/dev/nvidia$minor:/dev/nvidia$minor")
for d in nvidiactl nvidia-uvm; do [[ -c /dev/$d ]] && flags+=(--device "/dev/$d:/dev/$d"); done
mounts=("$(command -v nvidia-smi)")
for lib in libnvidia-ml.so.1 libcuda.so.1; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
  [[ -n $path ]] && mounts+=("$path")
done
for m in "${mounts[@]}"; do flags+=(--mount "type=bind,source=$m,target=$m,readonly"); done

echo "gpu-check: docker run ${flags[*]} $image nvidia-smi -L"
got=$(docker run --rm --cap-drop ALL --security-opt no-new-privileges --user 65534:65534 \
  -e CUDA_VISIBLE_DEVICES=0 "${flags[@]}" --entrypoint nvidia-smi "$image" -L)
echo "$got"
[[ $(grep -c '^GPU ' <<<"$got") == 1 ]] || die "expected exactly one GPU in the container, got: $got"
grep -q "$uuid" <<<"$got" || die "the container's GPU is not the host's GPU $index ($uuid)"
echo "gpu-check: ok: the container sees GPU $index ($uuid) and no other"
