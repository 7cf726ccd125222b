//go:build cgo

package vulkan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/backendtest"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/quant"
)

func randVec(r *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((r.Float64()*2 - 1) * s)
	}
	return v
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func upload(t testing.TB, b backend.Backend, data []float32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := b.Alloc(backend.F32, shape...)
	must(t, err)
	must(t, b.Write(x, data))
	return x
}

func read(t testing.TB, b backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Len())
	must(t, b.Read(x, out))
	return out
}

func quantize(t testing.TB, dt backend.DType, src []float32, cols int) []byte {
	t.Helper()
	raw := make([]byte, len(src)/cols*dt.RowBytes(cols))
	var err error
	switch dt {
	case backend.F32:
		err = quant.EncodeF32(raw, src)
	case backend.F16:
		err = quant.EncodeF16(raw, src)
	case backend.Q8_0:
		err = quant.QuantizeQ8_0(raw, src)
	case backend.Q4_0:
		err = quant.QuantizeQ4_0(raw, src)
	case backend.NF4:
		err = quant.QuantizeNF4(raw, src)
	}
	must(t, err)
	return raw
}

// TestDropoutMaskIsHash3 checks the shader's hash against backend.DropoutKeep
// bit for bit, for seeds with the top bit set, several streams and p.
func TestDropoutMaskIsHash3(t *testing.T) {
	b := open(t, Options{})
	const n = 70001
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	x := upload(t, b, ones, n)
	out, err := b.Alloc(backend.F32, n)
	must(t, err)
	seed, err := b.Alloc(backend.I32, 1)
	must(t, err)
	for _, c := range []struct {
		seed   int32
		stream uint32
		p      float32
	}{{1, 0, 0.5}, {-123456789, 7, 0.1}, {math.MaxInt32, 0xffffffff, 0.9}, {0, 3, 1e-3}} {
		must(t, b.Write(seed, []int32{c.seed}))
		must(t, b.Dropout(out, x, seed, c.stream, c.p))
		got := read(t, b, out)
		kept := 0
		for i, v := range got {
			want := backend.DropoutKeep(uint32(c.seed), c.stream, uint32(i), c.p)
			if (v != 0) != want {
				t.Fatalf("seed %d stream %d p %v: element %d kept=%v, backend.DropoutKeep says %v", c.seed, c.stream, c.p, i, v != 0, want)
			}
			if want {
				kept++
				if v != 1/(1-c.p) {
					t.Fatalf("element %d = %v, want 1/(1-p) = %v", i, v, 1/(1-c.p))
				}
			}
		}
		if frac := float64(kept) / n; math.Abs(frac-float64(1-c.p)) > 0.01 {
			t.Errorf("seed %d p %v: kept %.4f of elements, want about %.4f", c.seed, c.p, frac, 1-c.p)
		}
	}
}

// TestSplitBindings forces a 4 KiB binding limit so that weights and tables
// are split into row ranges (with unaligned starts for quantized rows), and
// compares against the unsplit reference.
func TestSplitBindings(t *testing.T) {
	b := open(t, Options{MaxBindingBytes: 4096})
	r := ref.New()
	defer r.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4} {
		rows, cols, n := 130, 128, 5
		raw := quantize(t, dt, randVec(rng, rows*cols, 1), cols)
		if len(raw) <= 4096 {
			t.Fatalf("%v weight of %d bytes does not exceed the forced limit", dt, len(raw))
		}
		var ws [2]backend.Tensor
		for i, be := range []backend.Backend{b, r} {
			w, err := be.FromBytes(dt, []int{rows, cols}, raw)
			must(t, err)
			ws[i] = w
		}
		xv, dyv := randVec(rng, n*cols, 1), randVec(rng, n*rows, 1)
		ids := []int32{0, 129, 64, 65, 17}
		var got [2][3][]float32
		for i, be := range []backend.Backend{b, r} {
			x, dy := upload(t, be, xv, n, cols), upload(t, be, dyv, n, rows)
			y, err := be.Alloc(backend.F32, n, rows)
			must(t, err)
			dx, err := be.Alloc(backend.F32, n, cols)
			must(t, err)
			emb, err := be.Alloc(backend.F32, n, cols)
			must(t, err)
			idt, err := be.Alloc(backend.I32, n)
			must(t, err)
			must(t, be.Write(idt, ids))
			must(t, be.MatMul(y, x, ws[i], false))
			must(t, be.MatMulDX(dx, dy, ws[i], false))
			must(t, be.Embed(emb, ws[i], idt))
			got[i] = [3][]float32{read(t, be, y), read(t, be, dx), read(t, be, emb)}
		}
		for k, name := range []string{"matmul", "matmul dx", "embed"} {
			if err := close(got[0][k], got[1][k], 1e-4); err != nil {
				t.Errorf("%v %s with split bindings: %v", dt, name, err)
			}
		}
	}
}

// TestConformanceSplit runs the conformance kit with an 8 KiB binding limit, so
// that every op whose tensors exceed it runs in pieces (rows, elements, or
// whole sequences for attention); one sequence above the limit is an error.
func TestConformanceSplit(t *testing.T) {
	b := open(t, Options{MaxBindingBytes: 8192})
	backendtest.Run(t, b, backendtest.Options{Short: true})
	if b.splits == 0 {
		t.Errorf("no launch was split: the test does not exercise splitting")
	}
	x, err := b.Alloc(backend.F32, 128, 32)
	must(t, err)
	err = b.Attention(x, nil, x, x, x, backend.Attention{Batch: 1, QLen: 128, KVLen: 128, KVCap: 128, Heads: 1, KVHeads: 1, HeadDim: 32, Scale: 1})
	if err == nil || !contains(err.Error(), "largest storage binding") {
		t.Errorf("16 KiB attention inputs with an 8 KiB binding limit: got %v, want a binding-limit error", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// close compares with the conformance kit's rule: |d| <= rel*max(|want|, rms).
func close(got, want []float32, rel float64) error {
	var ss float64
	for _, w := range want {
		ss += float64(w) * float64(w)
	}
	rms := math.Sqrt(ss / float64(len(want)))
	bad, first := 0, -1
	for i := range want {
		if math.Abs(float64(got[i])-float64(want[i])) > rel*max(math.Abs(float64(want[i])), rms) || math.IsNaN(float64(got[i])) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d elements differ; first [%d] = %v, want %v", bad, len(want), first, got[first], want[first])
	}
	return nil
}

// TestProfile checks that every dispatch is timed and attributed to its kernel.
func TestProfile(t *testing.T) {
	b := open(t, Options{})
	if !b.Device().Timestamps {
		t.Skip("device has no timestamp queries")
	}
	b.Profile(true)
	x := upload(t, b, randVec(rand.New(rand.NewPCG(3, 3)), 4096, 1), 64, 64)
	y, err := b.Alloc(backend.F32, 64, 64)
	must(t, err)
	for range 3 {
		must(t, b.MatMul(y, x, x, false))
	}
	must(t, b.Sync())
	prof := b.Profile(true)
	found := false
	for _, k := range prof {
		if k.Name == "gemm_nt_f32" {
			found = true
			if k.Calls != 3 || !(k.Seconds > 0) {
				t.Errorf("gemm_nt_f32: %d calls, %v s; want 3 calls and a positive time", k.Calls, k.Seconds)
			}
		}
	}
	if !found {
		t.Errorf("profile %v has no gemm_nt_f32", prof)
	}
	if again := b.Profile(false); len(again) != 0 {
		t.Errorf("profile after reset: %v, want empty", again)
	}
}

// TestNoDriver runs Devices in a child process whose loader finds no driver
// and checks the message tells the user what to install.
func TestNoDriver(t *testing.T) {
	if os.Getenv("LORA_VK_CHILD") == "1" {
		_, err := Devices()
		fmt.Println("ERR:", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoDriver$")
	cmd.Env = append(os.Environ(), "LORA_VK_CHILD=1", "VK_ICD_FILENAMES=/nonexistent/icd.json", "VK_DRIVER_FILES=/nonexistent/icd.json")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !contains(string(out), "no usable Vulkan driver (") || !contains(string(out), "); install a Vulkan driver (Debian: mesa-vulkan-drivers libvulkan1), or use --device cpu") {
		t.Errorf("child output %q lacks the no-driver message", out)
	}
}

// TestGEMMTiles holds every tile configuration of gemm.comp to the reference
// (the default run uses only the one chosen for this device).
func TestGEMMTiles(t *testing.T) {
	var skip []string
	for name := range backendtest.DefaultTol {
		if name != "MatMul" && name != "MatMulDX" && name != "MatMulDW" {
			skip = append(skip, name)
		}
	}
	for i, g := range []gemmConfig{smallTiles, largeTiles, narrowTiles, serialTiles} {
		t.Run(fmt.Sprintf("%dx%dx%d_%dx%d_serial=%v", g.BM, g.BN, g.BK, g.TM, g.TN, g.Serial), func(t *testing.T) {
			b := open(t, Options{})
			b.gemmCfg = g
			// the matrix-vector kernel takes MatMul's single-row cases: both kinds.
			b.serialMode = []int{serialOff, serialOn, serialOff, serialOn}[i]
			backendtest.Run(t, b, backendtest.Options{Short: true, Skip: skip})
		})
	}
}

// TestGEMV covers the matrix-vector kernels (both kinds) for 1 to 4 rows, with
// and without accumulation, on every weight type.
func TestGEMV(t *testing.T) {
	r := ref.New()
	defer r.Close()
	rng := rand.New(rand.NewPCG(4, 4))
	for _, mode := range []int{serialOn, serialOff} {
		b := open(t, Options{})
		b.serialMode = mode
		for _, dt := range []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4} {
			for _, m := range []int{1, 3, 4} {
				k, n := 128, 37
				raw := quantize(t, dt, randVec(rng, n*k, 1), k)
				xv, yv := randVec(rng, m*k, 1), randVec(rng, m*n, 1)
				var got [2][]float32
				for i, be := range []backend.Backend{b, r} {
					w, err := be.FromBytes(dt, []int{n, k}, raw)
					must(t, err)
					x, y := upload(t, be, xv, m, k), upload(t, be, yv, m, n)
					must(t, be.MatMul(y, x, w, true))
					got[i] = read(t, be, y)
				}
				if err := close(got[0], got[1], 1e-4); err != nil {
					t.Errorf("mode %d, %v, %d rows, accumulate: %v", mode, dt, m, err)
				}
			}
		}
	}
}

// TestRowKernels runs attention (forward, backward, and in a recorded step)
// through both kinds of row kernel: a workgroup per row and an invocation per row.
func TestRowKernels(t *testing.T) {
	var skip []string
	for name := range backendtest.DefaultTol {
		if name != "Attention" && name != "AttentionBackward" && name != "Record" {
			skip = append(skip, name)
		}
	}
	for _, mode := range []int{serialOn, serialOff} {
		t.Run(fmt.Sprint(map[int]string{serialOn: "serial", serialOff: "workgroup"}[mode]), func(t *testing.T) {
			b := open(t, Options{})
			b.serialMode = mode
			backendtest.Run(t, b, backendtest.Options{Short: true, Skip: skip})
		})
	}
}

// TestOutOfMemory asks for more than the device-local heap and checks that the
// error says what was needed, what is free and what to lower.
func TestOutOfMemory(t *testing.T) {
	b := open(t, Options{})
	heap := b.Device().MemoryBytes
	if heap == 0 || heap > 64<<30 {
		t.Skipf("heap of %d bytes: too large to exceed in a test", heap)
	}
	_, err := b.Alloc(backend.F32, int(heap/4)+1<<20)
	if err == nil {
		t.Fatal("allocating more than the heap succeeded")
	}
	t.Log(err)
	for _, want := range []string{"out of device memory", "needed", "free", "lower micro_batch_size"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// the backend still works afterwards.
	x, err := b.Alloc(backend.F32, 16)
	must(t, err)
	must(t, b.Fill(x, 2))
	if got := read(t, b, x); got[15] != 2 {
		t.Errorf("after the failed allocation: read %v", got[15])
	}
}

// TestArgumentErrors checks that misuse is an error naming the operation,
// never a panic or a silent success.
func TestArgumentErrors(t *testing.T) {
	b := open(t, Options{})
	other := open(t, Options{})
	f := func(shape ...int) backend.Tensor {
		x, err := b.Alloc(backend.F32, shape...)
		must(t, err)
		return x
	}
	x23, x32, x33, v3 := f(2, 3), f(3, 2), f(3, 3), f(3)
	ids, err := b.Alloc(backend.I32, 2)
	must(t, err)
	must(t, b.Write(ids, []int32{0, 5}))
	foreign, err := other.Alloc(backend.F32, 2, 3)
	must(t, err)
	freed := f(2, 3)
	b.Free(freed)
	q4, err := b.FromBytes(backend.Q4_0, []int{2, 32}, make([]byte, 2*18))
	must(t, err)
	cases := []struct {
		name, want string
		err        error
	}{
		{"matmul shapes", "matmul: out [2 3] = x [2 3] · wᵀ for w [3 2]", b.MatMul(x23, x23, x32, false)},
		{"matmul dx shapes", "matmul dx", b.MatMulDX(x33, x23, x32, false)},
		{"matmul dw shapes", "matmul dw", b.MatMulDW(x23, x33, x23, false)},
		{"quantized activations", "has dtype q4_0", b.AddScaled(q4, q4, 1)},
		{"embed id out of range", "ids[1] = 5 is outside the table's 3 rows", b.Embed(x23, x33, ids)},
		{"embed ids dtype", "want i32", b.Embed(x23, x33, x23)},
		{"rms norm weight", "rms norm", b.RMSNorm(x23, x23, x23, 1e-5)},
		{"copy out of bounds", "out of bounds", b.Copy(x23, 4, x23, 0, 3)},
		{"freed tensor", "used after Free", b.Fill(freed, 1)},
		{"foreign tensor", "not a tensor of this vulkan backend", b.Fill(foreign, 1)},
		{"nil tensor", "is nil", b.Mul(x23, nil, x23)},
		{"cross entropy labels", "cross entropy", b.CrossEntropy(v3, nil, x33, ids, v3)},
		{"rope parameters", "rope", b.RoPE(x23, ids, backend.RoPE{Heads: 1, HeadDim: 3, Dims: 3, Theta: 1e4}, false)},
		{"attention backward offset", "attention backward", b.AttentionBackward(x23, x23, x23, x23, x23, x23, x23, x23, backend.Attention{Batch: 1, QLen: 2, KVLen: 2, KVCap: 2, Heads: 1, KVHeads: 1, HeadDim: 3, QOffset: 1})},
		{"dropout seed", "want one i32 element", b.Dropout(x23, x23, ids, 0, 0.5)},
		{"adamw scalars", "adamw", b.AdamW(x23, x23, x23, x23, v3, v3)},
		{"write length", "write", b.Write(x23, []float32{1})},
		{"read type", "read", b.Read(x23, []int32{1, 2, 3, 4, 5, 6})},
		{"alloc dtype", "only f32 and i32", func() error { _, err := b.Alloc(backend.Q8_0, 32); return err }()},
		{"from bytes length", "needs 36 bytes", func() error { _, err := b.FromBytes(backend.Q4_0, []int{2, 32}, make([]byte, 35)); return err }()},
		{"from bytes huge shape, short data", "needs 2199023255552 bytes, got 4", func() error { _, err := b.FromBytes(backend.F32, []int{1 << 39}, make([]byte, 4)); return err }()},
		{"from bytes block", "multiple of the block size", func() error { _, err := b.FromBytes(backend.Q4_0, []int{2, 31}, nil); return err }()},
		{"write in record", "write inputs before Program.Run", func() error {
			_, err := b.Record(func() error { return b.Write(x23, make([]float32, 6)) })
			return err
		}()},
		{"read in record", "read results after Program.Run", func() error {
			_, err := b.Record(func() error { return b.Read(x23, make([]float32, 6)) })
			return err
		}()},
		{"nested record", "do not nest", func() error {
			_, err := b.Record(func() error { _, err := b.Record(func() error { return nil }); return err })
			return err
		}()},
		{"run after release", "after Release", func() error {
			p, err := b.Record(func() error { return b.Fill(x23, 1) })
			if err != nil {
				return err
			}
			p.Release()
			return p.Run()
		}()},
	}
	for _, c := range cases {
		if c.err == nil || !contains(c.err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, c.err, c.want)
		}
	}
	// after all that, the backend still computes.
	must(t, b.Fill(x23, 3))
	if got := read(t, b, x23); got[5] != 3 {
		t.Errorf("after the errors: %v", got)
	}
}

// TestAttentionSplit runs attention forward and backward over 3 sequences
// whose tensors exceed a forced 8 KiB binding limit (so they run in groups of
// whole sequences) and compares with the reference.
func TestAttentionSplit(t *testing.T) {
	b := open(t, Options{MaxBindingBytes: 8192})
	r := ref.New()
	defer r.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	a := backend.Attention{Batch: 3, QLen: 16, KVLen: 16, KVCap: 16, Heads: 2, KVHeads: 1, HeadDim: 32, Scale: 0.2}
	qn, kn, pn := 3*16*2*32, 3*16*32, 3*2*16*16
	qv, kv, vv, dov := randVec(rng, qn, 1), randVec(rng, kn, 1), randVec(rng, kn, 1), randVec(rng, qn, 1)
	var got [2][][]float32
	for i, be := range []backend.Backend{b, r} {
		q, k, v, dout := upload(t, be, qv, 48, 64), upload(t, be, kv, 48, 32), upload(t, be, vv, 48, 32), upload(t, be, dov, 48, 64)
		o, dq := upload(t, be, make([]float32, qn), 48, 64), upload(t, be, make([]float32, qn), 48, 64)
		dk, dv := upload(t, be, make([]float32, kn), 48, 32), upload(t, be, make([]float32, kn), 48, 32)
		p := upload(t, be, make([]float32, pn), 3, 2, 16, 16)
		must(t, be.Attention(o, p, q, k, v, a))
		must(t, be.AttentionBackward(dq, dk, dv, dout, p, q, k, v, a))
		for _, x := range []backend.Tensor{o, p, dq, dk, dv} {
			got[i] = append(got[i], read(t, be, x))
		}
	}
	if b.splits == 0 {
		t.Fatal("nothing was split")
	}
	for i, name := range []string{"out", "probs", "dq", "dk", "dv"} {
		if err := close(got[0][i], got[1][i], 1e-4); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRoPEBeyondTable records RoPE with small positions, then replays it with
// positions past the host table (computed in float32 in the shader) and
// compares with the reference at the precision a float32 angle allows.
func TestRoPEBeyondTable(t *testing.T) {
	b := open(t, Options{})
	r := ref.New()
	defer r.Close()
	rng := rand.New(rand.NewPCG(6, 6))
	p := backend.RoPE{Heads: 2, HeadDim: 16, Dims: 16, Theta: 10000, Layout: backend.RoPENeoX}
	xv := randVec(rng, 4*32, 1)
	far := []int32{ropeTabLen, ropeTabLen + 1, 6000, 9999}
	var got [2][]float32
	for i, be := range []backend.Backend{b, r} {
		x := upload(t, be, xv, 4, 32)
		pos, err := be.Alloc(backend.I32, 4)
		must(t, err)
		must(t, be.Write(pos, []int32{0, 1, 2, 3}))
		prog, err := be.Record(func() error { return be.RoPE(x, pos, p, false) })
		must(t, err)
		must(t, be.Write(pos, far))
		must(t, be.Write(x, xv))
		must(t, prog.Run())
		got[i] = read(t, be, x)
		prog.Release()
	}
	if err := close(got[0], got[1], 2e-3); err != nil {
		t.Errorf("positions %v past the %d-position table: %v", far, ropeTabLen, err)
	}
}
