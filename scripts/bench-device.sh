#!/bin/sh
# Vulkan engine benchmarks on a lent GPU (NVIDIA H200), against PyTorch + PEFT.
#
#   sh scripts/bench-device.sh prepare   # here: build the test binary, fetch the Vulkan loader
#   sh scripts/bench-device.sh run       # there: run both sides, print one table
#
# prepare builds .bench/vulkan.test (the engine's benchmarks with the SPIR-V
# embedded; cgo, x86-64) and downloads the Vulkan loader packages into .gl/
# as /work/.library/device/README.md describes, ignoring both in
# .git/info/exclude. Then call the device tool:
#   run(command: "sh scripts/bench-device.sh run", carry: [".bench", ".gl"], timeout_s: 540)
# run unpacks the loader, runs the GEMM and LoRA-layer benchmarks at LLaMA
# shapes (tokens x in x out), runs the same products and a PEFT LoRA layer
# step (rank 16, forward + backward) in PyTorch, and prints one table; the
# raw logs and the table also land in $OUT when it is set.
set -eu
cd "$(dirname "$0")/.."

# tokens x in x out: stories15M FFN, Llama-3.2-1B q_proj and up_proj, Llama-2-7B q_proj and up_proj.
SHAPES=${LORA_BENCH_SHAPES:-512x288x768,2048x2048x2048,2048x2048x8192,2048x4096x4096,2048x4096x11008}
BENCHTIME=${BENCHTIME:-10x}

prepare() {
	mkdir -p .bench
	grep -qx '/.bench/' .git/info/exclude 2>/dev/null || echo '/.bench/' >>.git/info/exclude
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go test -c -o .bench/vulkan.test ./pkg/backend/vulkan
	if [ ! -d .gl ] || ! ls .gl/*.deb >/dev/null 2>&1; then
		grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo '/.gl/' >>.git/info/exclude
		mkdir -p .gl /tmp/amd64/partial
		o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
		# shellcheck disable=SC2086
		apt-get $o update
		# shellcheck disable=SC2086
		(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
	fi
	du -sh .bench .gl
	echo 'now: run(command: "sh scripts/bench-device.sh run", carry: [".bench", ".gl"], timeout_s: 540)'
}

peft_py() {
	cat <<'PY'
import os, sys, time
import torch
from torch import nn

shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False

def timeit(fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters

try:
    from peft import LoraConfig, get_peft_model
except Exception as e:  # PEFT missing: report the plain products only
    LoraConfig = None
    print("# peft unavailable:", e, file=sys.stderr)

for (m, k, n) in shapes:
    for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        x = torch.randn(m, k, device=dev, dtype=dt)
        w = torch.randn(n, k, device=dev, dtype=dt)
        dy = torch.randn(m, n, device=dev, dtype=dt)
        fl = 2.0 * m * k * n
        t = timeit(lambda: x @ w.T)
        print(f"torch gemm fwd {name} {m}x{k}x{n} {fl / t / 1e9:.1f}")
        t = timeit(lambda: dy @ w)
        print(f"torch gemm dx {name} {m}x{k}x{n} {fl / t / 1e9:.1f}")
        if LoraConfig is None:
            continue
        base = nn.Sequential()
        base.add_module("proj", nn.Linear(k, n, bias=False))
        base = base.to(device=dev, dtype=dt)
        model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["proj"]))
        xi = torch.randn(m, k, device=dev, dtype=dt, requires_grad=True)
        def step():
            y = model(xi)
            y.backward(dy)
        t = timeit(step)
        print(f"peft lora {name} {m}x{k}x{n} {t * 1e3:.3f}")
PY
}

run() {
	if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
		for f in .gl/*.deb; do dpkg -x "$f" /; done
		ldconfig
	fi
	if [ -d /usr/local/nvidia/share/vulkan/icd.d ]; then
		export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
		export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
	fi
	out=${OUT:-/tmp/bench-out}
	mkdir -p "$out"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$out/machine.txt" 2>/dev/null || true
	LORA_BENCH_SHAPES=$SHAPES ./.bench/vulkan.test -test.run '^TestConformance$' -test.short >"$out/conformance.txt" 2>&1 || echo "conformance FAILED on the device (see conformance.txt)"
	peft_py >"$out/peft_bench.py"
	PYTHONUNBUFFERED=1 python3 "$out/peft_bench.py" "$SHAPES" >"$out/torch.txt" 2>"$out/torch.err" || echo "pytorch baseline failed (see torch.err)"
	LORA_BENCH_SHAPES=$SHAPES ./.bench/vulkan.test -test.run '^$' -test.bench 'GEMM|LoRALayer' \
		-test.benchtime "$BENCHTIME" -test.timeout 6m >"$out/vulkan.txt" 2>&1 || echo "vulkan benchmarks failed or timed out (see vulkan.txt; the table shows what finished)"
	table "$out" | tee "$out/table.md"
}

# table merges the two logs: one row per shape and op.
table() {
	awk -v machine="$(cat "$1/machine.txt" 2>/dev/null)" '
	FNR == 1 { file++ }
	file == 1 && /^BenchmarkGEMM\// {
		split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
		for (i = 2; i <= NF; i++) if ($i == "GFLOP/s") g[p[4] " " p[2] " " p[3]] = $(i - 1)
		shapes[p[4]] = 1
	}
	file == 1 && /^BenchmarkLoRALayer\// {
		split($1, p, "/"); sub(/-[0-9]+$/, "", p[3])
		for (i = 2; i <= NF; i++) if ($i == "ns/op") l[p[3] " " p[2]] = sprintf("%.3f", $(i - 1) / 1e6)
	}
	file == 2 && $1 == "torch" { t[$5 " " $3 " " $4] = $6; shapes[$5] = 1 }
	file == 2 && $1 == "peft" { pl[$4 " " $3] = $5 }
	function v(x) { return x == "" ? "-" : x }
	END {
		print "Machine: " machine
		print ""
		print "GEMM GFLOP/s (Vulkan by weight type; PyTorch f32 without TF32, and bf16)"
		print ""
		print "| shape (tokens x in x out) | op | vk f32 | vk f16 | vk q8_0 | vk q4_0 | vk nf4 | torch f32 | torch bf16 |"
		print "|---|---|---|---|---|---|---|---|---|"
		for (s in shapes) for (o = 1; o <= 2; o++) {
			op = o == 1 ? "fwd" : "dx"
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, op, v(g[s " " op " f32"]), v(g[s " " op " f16"]), v(g[s " " op " q8_0"]), v(g[s " " op " q4_0"]), v(g[s " " op " nf4"]), v(t[s " " op " f32"]), v(t[s " " op " bf16"])
		}
		print ""
		print "LoRA layer training step, rank 16, forward + backward (ms)"
		print ""
		print "| shape | vk f32 | vk f16 | vk q8_0 | vk q4_0 | vk nf4 | PEFT f32 | PEFT bf16 |"
		print "|---|---|---|---|---|---|---|---|"
		for (s in shapes) printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, v(l[s " f32"]), v(l[s " f16"]), v(l[s " q8_0"]), v(l[s " q4_0"]), v(l[s " nf4"]), v(pl[s " f32"]), v(pl[s " bf16"])
	}' "$1/vulkan.txt" "$1/torch.txt"
}

case ${1:-} in
prepare) prepare ;;
run) run ;;
table) table "${2:?usage: bench-device.sh table DIR}" ;;
*)
	echo "usage: sh scripts/bench-device.sh prepare|run|table DIR" >&2
	exit 2
	;;
esac
