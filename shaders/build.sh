#!/bin/sh
# Compiles every shader variant to SPIR-V: sh shaders/build.sh [outdir]
# (default shaders/spv, which is committed and embedded by shaders.go).
# The output is deterministic for a given glslc; a test recompiles into a
# temporary directory and compares bytes.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/spv}
mkdir -p "$out"
GLSLC=${GLSLC:-glslc}
command -v "$GLSLC" >/dev/null 2>&1 || { echo "build.sh: glslc not found: install glslc (Debian: apt-get install glslc)" >&2; exit 1; }

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
pids= running=0 failed=0

# variant NAME SOURCE [DEFINES...] compiles one variant in the background,
# JOBS at a time.
variant() {
	name=$1 src=$2
	shift 2
	"$GLSLC" --target-env=vulkan1.1 -O -fshader-stage=compute -I "$here" "$@" "$here/$src" -o "$out/$name.spv" &
	pids="$pids $!"
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		drain
	fi
}

drain() {
	for p in $pids; do
		wait "$p" || failed=1
	done
	pids= running=0
}

for w in f32 f16 q8_0 q4_0 nf4; do
	W=$(echo "$w" | tr a-z A-Z)
	variant "gemm_nt_$w" gemm.comp -DB_T "-DW_$W"
	variant "gemm_nn_$w" gemm.comp "-DW_$W"
	variant "gemv_$w" gemv.comp "-DW_$W"
	variant "embed_$w" embed.comp "-DW_$W"
done
variant gemm_tn_f32 gemm.comp -DA_T -DW_F32
variant rmsnorm rmsnorm.comp
variant rmsnorm_bwd rmsnorm.comp -DBACKWARD
variant rope rope.comp
variant attention attention.comp
variant attention_bwd_q attention_bwd_q.comp
variant attention_bwd_kv attention_bwd_kv.comp
for op in fill copy add_scaled mul add_bias sum_rows swiglu swiglu_bwd dropout adamw; do
	variant "$op" eltwise.comp "-D$(echo "$op" | tr a-z A-Z)"
done
variant cross_entropy cross_entropy.comp
variant sumsq_partial sumsq.comp -DPARTIAL
variant sumsq_final sumsq.comp
drain
if [ "$failed" -ne 0 ]; then
	echo "build.sh: some shaders failed to compile" >&2
	exit 1
fi
