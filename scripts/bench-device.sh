#!/bin/sh
# Vulkan engine benchmarks on a lent GPU (NVIDIA H200), against PyTorch + PEFT.
#
#   sh scripts/bench-device.sh prepare     # here: build the binaries, fetch the Vulkan loader
#   sh scripts/bench-device.sh run         # there: run both sides, print one table
#   sh scripts/bench-device.sh table DIR   # anywhere: the table again from a run's logs
#
# prepare builds .bench/vulkan.test (the engine's tests and benchmarks, SPIR-V
# embedded) and .bench/lora (for `lora devices`), both cgo and x86-64 and
# needing only libc and, at run time, libvulkan.so.1; it downloads the Vulkan
# loader and glvnd packages into .gl/ as /work/.library/device/README.md
# describes (.gitignore keeps both out of git). Then one device call:
#
#   run(command: "sh scripts/bench-device.sh run", carry: [".bench", ".gl"], timeout_s: 360)
#
# run needs no network, go or glslc: it unpacks the loader when the machine
# has none, points the loader at the NVIDIA driver, lists the Vulkan devices,
# runs the engine's tests (TestConformance and the rest, -short), times the same products and a PEFT LoRA layer
# step (rank 16, forward + backward) in PyTorch, then the Vulkan GEMM and
# LoRA-layer benchmarks at LLaMA shapes (tokens x in x out), and prints one
# table. Every step has a time limit inside BENCH_BUDGET seconds (default
# 300), so the call ends well inside timeout_s and a rerun still fits the
# session's device time. The logs and the table land in $OUT (six
# files) when it is set, else in /tmp/bench-out. Nothing is written to the
# tree, which may be read-only.
set -eu
cd "$(dirname "$0")/.."

# tokens x in x out: stories15M FFN, Llama-3.2-1B q_proj and up_proj, Llama-2-7B q_proj and up_proj.
SHAPES=${LORA_BENCH_SHAPES:-512x288x768,2048x2048x2048,2048x2048x8192,2048x4096x4096,2048x4096x11008}
BENCHTIME=${BENCHTIME:-10x}
BENCH_BUDGET=${BENCH_BUDGET:-300}

prepare() {
	rm -rf .bench # all of it travels: only the two binaries
	mkdir -p .bench
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go test -c -o .bench/vulkan.test ./pkg/backend/vulkan
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -ldflags='-s -w' -o .bench/lora ./cmd/lora
	if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
		mkdir -p .gl /tmp/amd64/partial
		o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
		# shellcheck disable=SC2086
		apt-get $o update
		# shellcheck disable=SC2086
		(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
	fi
	for p in .bench .gl; do
		if ! git check-ignore -q "$p"; then
			echo "bench-device: $p is not ignored by git; add /$p/ to .gitignore" >&2
			exit 1
		fi
	done
	du -sh .bench .gl
	echo "now: run(command: \"sh scripts/bench-device.sh run\", carry: [\".bench\", \".gl\"], timeout_s: $((BENCH_BUDGET + 60)))"
}

# peft_py prints "torch gemm OP TYPE SHAPE GFLOP/s" and "peft lora TYPE SHAPE ms"
# lines, and "# " lines that say what ran or why not. It never fails: a
# missing torch, CUDA or peft is reported as such.
peft_py() {
	cat <<'PY'
import os, sys, time

try:
    import torch
    from torch import nn
except Exception as e:
    print(f"# torch unavailable: {type(e).__name__}: {e}")
    sys.exit(0)

dev = os.environ.get("LORA_BENCH_TORCH_DEVICE", "cuda")
if dev == "cuda" and not torch.cuda.is_available():
    print(f"# torch unavailable: torch {torch.__version__} sees no CUDA device")
    sys.exit(0)
name = torch.cuda.get_device_name(0) if dev == "cuda" else dev
print(f"# torch {torch.__version__} on {name}", flush=True)
try:  # f32 products in full precision (no TF32); "highest" is the default, say it anyway
    torch.set_float32_matmul_precision("highest")
except Exception as e:
    print(f"# torch could not turn TF32 off: {e}", file=sys.stderr)

def sync():
    if dev == "cuda":
        torch.cuda.synchronize()

def timeit(fn, iters=20):
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters

try:
    import peft
    from peft import LoraConfig, get_peft_model
    print(f"# peft {peft.__version__}", flush=True)
except Exception as e:
    LoraConfig = None
    print(f"# peft unavailable: {type(e).__name__}: {e}", flush=True)

shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[1].split(",")]
for (m, k, n) in shapes:
    for dt, tn in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        try:
            x = torch.randn(m, k, device=dev, dtype=dt)
            w = torch.randn(n, k, device=dev, dtype=dt)
            dy = torch.randn(m, n, device=dev, dtype=dt)
            fl = 2.0 * m * k * n
            t = timeit(lambda: x @ w.T)
            print(f"torch gemm fwd {tn} {m}x{k}x{n} {fl / t / 1e9:.1f}", flush=True)
            t = timeit(lambda: dy @ w)
            print(f"torch gemm dx {tn} {m}x{k}x{n} {fl / t / 1e9:.1f}", flush=True)
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
            ad = next((str(p.dtype).replace("torch.", "") for pn, p in model.named_parameters() if "lora_A" in pn), "?")
            print(f"peft lora {tn} {m}x{k}x{n} {t * 1e3:.3f} adapter={ad}", flush=True)
            del model, base, xi
        except Exception as e:
            print(f"# failed {tn} {m}x{k}x{n}: {type(e).__name__}: {e}", flush=True)
        finally:
            x = w = dy = None
            if dev == "cuda":
                torch.cuda.empty_cache()
PY
}

# left prints the seconds left of BENCH_BUDGET, less $1 kept for what follows.
left() {
	echo $((DEADLINE - $(date +%s) - ${1:-0}))
}

# limit prints min($1, seconds left less $2), or fails when under 10 s are left.
limit() {
	l=$(left "${2:-0}")
	[ "$l" -gt "$1" ] && l=$1
	[ "$l" -ge 10 ] || return 1
	echo "$l"
}

run() {
	DEADLINE=$(($(date +%s) + BENCH_BUDGET))
	out=${OUT:-/tmp/bench-out}
	mkdir -p "$out"
	rm -f "$out/machine.txt" "$out/tests.txt" "$out/torch.txt" "$out/torch.err" "$out/vulkan.txt" "$out/table.md"
	tmp=$(mktemp -d)
	echo "bench-device: budget ${BENCH_BUDGET}s, shapes $SHAPES, benchtime $BENCHTIME, logs in $out"

	# The loader (libvulkan.so.1) and glvnd, unpacked as the device README says.
	if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
		if ls .gl/*.deb >/dev/null 2>&1; then
			for f in .gl/*.deb; do dpkg -x "$f" / || echo "bench-device: could not unpack $f"; done
			ldconfig || true
		else
			echo "bench-device: no libvulkan.so.1 here and no .gl/*.deb carried (run prepare, carry .gl)"
		fi
	fi
	icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
	if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
		export VK_DRIVER_FILES="$icd"
		egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
		[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
	fi

	# The binaries, runnable even if the carry lost their execute bits.
	for b in vulkan.test lora; do
		if [ ! -f ".bench/$b" ]; then
			echo "bench-device: .bench/$b is missing: run 'sh scripts/bench-device.sh prepare' here and carry .bench" >&2
			exit 1
		fi
		cp ".bench/$b" "$tmp/$b"
		chmod 755 "$tmp/$b"
	done

	vulkan=yes
	{
		if command -v nvidia-smi >/dev/null; then
			nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
		else
			echo "no nvidia-smi"
		fi
		echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
		timeout -k 5 60 "$tmp/lora" devices 2>&1 || {
			echo "lora devices failed; the loader says:"
			VK_LOADER_DEBUG=error,warn,driver timeout -k 5 60 "$tmp/lora" devices 2>&1 | head -n 60
			false
		}
	} >"$out/machine.txt" 2>&1 || vulkan="unavailable (see machine.txt)"
	if [ "$vulkan" = yes ] && ! grep -q '^vulkan:' "$out/machine.txt"; then
		vulkan="unavailable (no device listed; see machine.txt)"
	fi
	# On the GPU machine a CPU device (lavapipe) alone means the NVIDIA driver did not load:
	# its figures would be meaningless and would spend the budget.
	if [ "$vulkan" = yes ] && command -v nvidia-smi >/dev/null && [ -z "${LORA_BENCH_ALLOW_CPU:-}" ] &&
		! awk -F '  +' '/^vulkan:/ && $3 != "cpu" { found = 1 } END { exit !found }' "$out/machine.txt"; then
		vulkan="unavailable (only a CPU Vulkan device: the NVIDIA driver did not load; see machine.txt)"
		VK_LOADER_DEBUG=error,warn,driver timeout -k 5 60 "$tmp/lora" devices 2>&1 | head -n 60 >>"$out/machine.txt" || true
	fi
	cat "$out/machine.txt"

	# The benchmarks' cwd is the package directory, as under go test.
	pkg=pkg/backend/vulkan
	if [ "$vulkan" = yes ]; then
		# The package's tests (-short: seconds) first: the first run of every kernel on
		# parallel hardware, with a GPU's subgroup size and the tiles chosen for GPUs.
		if t=$(limit 90 "$(($(left) * 3 / 4))"); then
			echo "vulkan tests (limit ${t}s)"
			(cd "$pkg" && timeout -k 5 "$t" "$tmp/vulkan.test" -test.short -test.timeout "$((t - 3))s") \
				>"$out/tests.txt" 2>&1 || echo "vulkan tests FAILED on the device (see tests.txt)"
			tail -n 3 "$out/tests.txt"
		else
			echo "no time left for the tests" | tee "$out/tests.txt"
		fi
	fi

	peft_py >"$tmp/peft_bench.py"
	if t=$(limit 150 "$(($(left) * 2 / 3))"); then
		echo "pytorch (limit ${t}s)"
		rc=0
		PYTHONUNBUFFERED=1 timeout -k 5 "$t" python3 "$tmp/peft_bench.py" "$SHAPES" >"$out/torch.txt" 2>"$out/torch.err" || rc=$?
		if [ "$rc" != 0 ]; then
			why="exit status $rc, see torch.err"
			[ "$rc" = 124 ] || [ "$rc" = 137 ] && why="out of time after ${t}s"
			echo "# failed: stopped, $why" >>"$out/torch.txt"
		fi
		grep '^#' "$out/torch.txt" || true
	else
		echo "# torch not run: no time left" | tee "$out/torch.txt"
	fi
	if ! grep -q '^# torch ' "$out/torch.txt" 2>/dev/null; then
		echo "# torch unavailable: $(tail -n 1 "$out/torch.err" 2>/dev/null || echo 'not run')" >>"$out/torch.txt"
	fi

	# GEMM first, then the LoRA layer in a process of its own: 40 and 60 % of what is left
	# (the LoRA benchmark makes and uploads its tensors twice per type and shape).
	echo "# shapes $SHAPES" >"$out/vulkan.txt"
	if [ "$vulkan" = yes ]; then
		for bench in GEMM LoRALayer; do
			keep=0
			[ "$bench" = GEMM ] && keep=$(($(left) * 6 / 10))
			if ! t=$(limit 100000 "$((keep + 10))"); then
				echo "no time left for Benchmark$bench" | tee -a "$out/vulkan.txt"
				continue
			fi
			echo "vulkan Benchmark$bench (limit ${t}s)"
			# -test.timeout does not cover benchmarks: timeout's SIGQUIT stops a slow or hung one
			# and makes Go print where it was.
			rc=0
			(cd "$pkg" && LORA_BENCH_SHAPES=$SHAPES timeout -s QUIT -k 5 "$t" "$tmp/vulkan.test" -test.run '^$' \
				-test.bench "^Benchmark$bench\$" -test.benchtime "$BENCHTIME" -test.v) >>"$out/vulkan.txt" 2>&1 || rc=$?
			if [ "$rc" != 0 ]; then
				why="exit status $rc"
				[ "$rc" = 124 ] || [ "$rc" = 137 ] && why="out of time after ${t}s"
				echo "bench-device: Benchmark$bench stopped: $why" | tee -a "$out/vulkan.txt"
			fi
		done
		if grep -q 'skipping:' "$out/vulkan.txt"; then
			vulkan="unavailable ($(grep -m 1 'skipping:' "$out/vulkan.txt" | sed 's/.*skipping: //'))"
		fi
	fi
	echo "# vulkan $vulkan" >>"$out/vulkan.txt"
	echo
	table "$out" | tee "$out/table.md"
	rm -rf "$tmp"
}

# table merges the logs of one run (DIR/vulkan.txt, DIR/torch.txt,
# DIR/machine.txt, DIR/tests.txt): one row per shape and op, in the order the run asked for.
# A missing figure is "-", a side that did not run is "n/a".
table() {
	[ -d "$1" ] || {
		echo "bench-device: no directory $1" >&2
		exit 2
	}
	logs=
	for f in vulkan.txt torch.txt; do
		if [ -f "$1/$f" ]; then logs="$logs $1/$f"; fi
	done
	machine=$(grep -v '^VK_DRIVER_FILES=' "$1/machine.txt" 2>/dev/null | head -n 1)
	# The device lora picks: the first discrete GPU, else the first listed (name, type, driver, API).
	vkdev=$(awk -F '  +' '/^vulkan:/ { d = $2 ", " $3 ", " $4 ", Vulkan " $5; if (first == "") first = d; if ($3 == "discrete" && disc == "") disc = d }
		END { print disc != "" ? disc : first }' "$1/machine.txt" 2>/dev/null || true)
	tests="not run"
	if [ -f "$1/tests.txt" ]; then
		if grep -q '^PASS$' "$1/tests.txt"; then
			tests=passed
		elif grep -q -e '--- FAIL: ' "$1/tests.txt"; then
			tests="FAILED:$(grep -e '--- FAIL: ' "$1/tests.txt" | awk '{ printf " %s", $3 }') (see tests.txt)"
		else
			tests="did not finish: $(tail -n 1 "$1/tests.txt")"
		fi
	fi
	awk -v machine="$machine" -v vkdev="$vkdev" -v tests="$tests" '
	function v(x, side) { return side != "" ? "n/a" : x == "" ? "-" : x }
	# gv: GFLOP/s from the GPU timestamps, else from wall time, marked w.
	function gv(k) { if (vna != "") return "n/a"; if (g[k] != "") return g[k]; if (gw[k] != "") { wall = 1; return gw[k] }; return "-" }
	function addshape(s) { if (!(s in seen)) { seen[s] = 1; list[++ns] = s } }
	BEGIN {
		vkstate = "not run"; tstate = "not run"; pstate = ""
	}
	FILENAME ~ /vulkan\.txt$/ && $1 == "#" && $2 == "shapes" { n = split($3, o, ","); for (i = 1; i <= n; i++) addshape(o[i]) }
	# A benchmark line can be split by output that lands between its name and its figures.
	FILENAME ~ /vulkan\.txt$/ && $1 ~ /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name); at = /ns\/op/ ? ", after " : ", in " }
	FILENAME ~ /vulkan\.txt$/ && /ns\/op/ {
		if ($1 !~ /^Benchmark/) { line = name " " $0; $0 = line }
		nparts = split($1, p, "/")
		if (p[1] ~ /^BenchmarkGEMM/ && nparts == 4) {
			sub(/-[0-9]+$/, "", p[4]); addshape(p[4])
			for (i = 2; i <= NF; i++) {
				if ($i == "GFLOP/s") g[p[4] " " p[2] " " p[3]] = $(i - 1)
				if ($i == "ns/op") { split(p[4], d, "x"); gw[p[4] " " p[2] " " p[3]] = sprintf("%.1fw", 2 * d[1] * d[2] * d[3] / $(i - 1)) }
			}
		}
		if (p[1] ~ /^BenchmarkLoRALayer/ && nparts == 3) {
			sub(/-[0-9]+$/, "", p[3]); addshape(p[3])
			for (i = 2; i <= NF; i++) if ($i == "ns/op") l[p[3] " " p[2]] = sprintf("%.3f", $(i - 1) / 1e6)
		}
	}
	FILENAME ~ /vulkan\.txt$/ && $1 == "---" && $2 == "FAIL:" { vfail = vfail " " $3 }
	FILENAME ~ /vulkan\.txt$/ && /^bench-device: Benchmark/ { vnote = vnote "\n- Vulkan " $2 " " substr($0, index($0, "stopped:")) (name != "" ? at name : "") }
	FILENAME ~ /vulkan\.txt$/ && /^no time left for Benchmark/ { vnote = vnote "\n- Vulkan " $NF ": not run, no time left" }
	FILENAME ~ /vulkan\.txt$/ && $1 == "#" && $2 == "vulkan" { $1 = ""; $2 = ""; sub(/^ +/, ""); vkstate = $0 }
	FILENAME ~ /torch\.txt$/ && $1 == "torch" && $2 == "gemm" { t[$5 " " $3 " " $4] = $6; addshape($5) }
	FILENAME ~ /torch\.txt$/ && $1 == "peft" && $2 == "lora" {
		pl[$4 " " $3] = $5; addshape($4)
		if ($6 ~ /^adapter=/ && !(($3) in pad)) { pad[$3] = substr($6, 9); padl = padl ", " $3 " base: " pad[$3] }
	}
	FILENAME ~ /torch\.txt$/ && $1 == "#" && $2 == "torch" { $1 = ""; sub(/^ +/, ""); tstate = $0 }
	FILENAME ~ /torch\.txt$/ && $1 == "#" && $2 == "peft" { $1 = ""; sub(/^ +/, ""); pstate = $0 }
	FILENAME ~ /torch\.txt$/ && $1 == "#" && $2 == "failed" { $1 = ""; sub(/^ +/, ""); tfail = tfail "\n- PyTorch " $0 }
	END {
		if (vkstate == "yes") vkstate = vkdev != "" ? vkdev : "ran"
		vna = vkstate ~ /^(unavailable|not run)/ ? "x" : ""
		tna = tstate ~ /^(torch unavailable|torch not run|not run)/ ? "x" : ""
		pna = tna != "" || pstate ~ /unavailable/ || pstate == "" ? "x" : ""
		print "Machine: " (machine == "" ? "unknown" : machine)
		print ""
		print "- Vulkan: " vkstate
		if (vna == "") print "- Vulkan tests (go test -short, TestConformance and the rest): " tests
		if (vfail != "") print "- Vulkan failed (see vulkan.txt):" vfail
		if (vnote != "") print substr(vnote, 2)
		print "- PyTorch: " tstate
		if (tna == "") print "- PEFT: " (pstate == "" ? "not run" : pstate) (padl != "" ? "; LoRA weights in " substr(padl, 3) : "")
		if (tfail != "") print substr(tfail, 2)
		print ""
		print "GEMM GFLOP/s (Vulkan by weight type; PyTorch f32 without TF32, and bf16)"
		print ""
		print "| shape (tokens x in x out) | op | vk f32 | vk f16 | vk q8_0 | vk q4_0 | vk nf4 | torch f32 | torch bf16 |"
		print "|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= ns; i++) for (j = 1; j <= 2; j++) {
			s = list[i]; op = j == 1 ? "fwd" : "dx"
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, op, gv(s " " op " f32"), gv(s " " op " f16"), gv(s " " op " q8_0"), gv(s " " op " q4_0"), gv(s " " op " nf4"), v(t[s " " op " f32"], tna), v(t[s " " op " bf16"], tna)
		}
		if (wall) { print ""; print "w: from wall time per product (submission and wait included): the device gave no GPU timestamps" }
		print ""
		print "LoRA layer training step, rank 16, forward + backward (ms)"
		print ""
		print "| shape | vk f32 | vk f16 | vk q8_0 | vk q4_0 | vk nf4 | PEFT f32 | PEFT bf16 |"
		print "|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= ns; i++) {
			s = list[i]
			printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, v(l[s " f32"], vna), v(l[s " f16"], vna), v(l[s " q8_0"], vna), v(l[s " q4_0"], vna), v(l[s " nf4"], vna), v(pl[s " f32"], pna), v(pl[s " bf16"], pna)
		}
	}' $logs /dev/null # $logs: split on purpose (paths without blanks)
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
