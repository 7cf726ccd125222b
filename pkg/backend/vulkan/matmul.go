//go:build cgo

package vulkan

import (
	"fmt"
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
)

// gemmConfig holds the tile sizes passed to gemm.comp as specialization constants.
// Serial configurations give each invocation TM x TN outputs computed from
// memory, without shared tiles (BM = TM, BN = TN).
type gemmConfig struct {
	BM, BN, BK, TM, TN uint32
	Serial             bool
}

func (g gemmConfig) threads() uint32 {
	if g.Serial {
		return 64
	}
	return (g.BM / g.TM) * (g.BN / g.TN)
}

func (g gemmConfig) spec() []uint32 {
	return []uint32{g.threads(), g.BM, g.BN, g.BK, g.TM, g.TN, boolU(g.Serial)}
}

// Tile configurations: small tiles keep a GPU busy on the small products of
// LoRA training (few tokens per micro-batch); large tiles with 8x8 outputs per
// invocation do more work per barrier, which CPU implementations (lavapipe:
// 0.58 vs 0.22 GFLOP/s for 64x64 tiles on a loaded 2-core machine) need.
var (
	smallTiles = gemmConfig{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4}
	largeTiles = gemmConfig{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8}
)

// narrowTiles has 64 invocations and 4 KiB of shared memory, for devices
// below largeTiles' needs.
var narrowTiles = gemmConfig{BM: 64, BN: 64, BK: 8, TM: 8, TN: 8}

// serialTiles computes 4x4 outputs per invocation without shared memory or
// barriers: small products on CPU devices (a stories260K training step spent
// 275 instead of 1250 ms in GEMMs on lavapipe than with 128x128 tiles).
var serialTiles = gemmConfig{BM: 4, BN: 4, BK: 1, TM: 4, TN: 4, Serial: true}

// defaultGemm returns a fixed configuration for devices that cannot run
// largeTiles; zero means choose per product.
func defaultGemm(d vk.DeviceInfo) gemmConfig {
	if d.MaxWorkgroupInvocation < largeTiles.threads() || d.SharedMemory < 16<<10 {
		return narrowTiles
	}
	return gemmConfig{}
}

// gemvRows is the most rows MatMul sends to the matrix-vector kernel.
const gemvRows = 4

// tiles picks the configuration for an M x N product.
func (b *Backend) tiles(M, N int) gemmConfig {
	if b.gemmCfg.BM != 0 {
		return b.gemmCfg
	}
	big := ceilDiv(uint64(M), 128) * ceilDiv(uint64(N), 128)
	if b.info.Type == "cpu" {
		if big >= 8 {
			return largeTiles
		}
		return serialTiles
	}
	if big >= 512 {
		return largeTiles
	}
	return smallTiles
}

var weightName = map[backend.DType]string{
	backend.F32: "f32", backend.F16: "f16", backend.Q8_0: "q8_0", backend.Q4_0: "q4_0", backend.NF4: "nf4",
}

func (b *Backend) weight(op string, x backend.Tensor) (*tensor, error) {
	w, err := b.get(op, "w", x)
	if err != nil {
		return nil, err
	}
	if _, ok := weightName[w.dt]; !ok {
		return nil, fmt.Errorf("%s: w %v has dtype %v: want f32, f16, q8_0, q4_0 or nf4", op, w.shape, w.dt)
	}
	return w, nil
}

// rowRange is a range of weight rows bound as one view.
type rowRange struct {
	r0, r1 int
	view   vk.View
	base   uint32 // byte offset of row r0 inside view
}

// rowRanges splits t's rows into ranges whose bindings fit the device limit.
func (b *Backend) rowRanges(op string, t *tensor) ([]rowRange, error) {
	rowBytes := uint64(t.dt.RowBytes(t.cols))
	if t.bytes+3 <= b.maxBind {
		return []rowRange{{0, t.rows, t.view(), 0}}, nil
	}
	per := int((b.maxBind - b.align - 4) / rowBytes)
	if per < 1 {
		return nil, fmt.Errorf("%s: one row of w %v (%d bytes) exceeds the device's largest storage binding (%s)", op, t.shape, rowBytes, vk.MiB(b.maxBind))
	}
	var out []rowRange
	for r0 := 0; r0 < t.rows; r0 += per {
		r1 := min(t.rows, r0+per)
		start := t.blk.Offset + uint64(r0)*rowBytes
		aligned := start / b.align * b.align
		end := t.blk.Offset + uint64(r1)*rowBytes
		out = append(out, rowRange{r0, r1, vk.View{Buffer: t.blk.Buffer, Offset: aligned, Size: (end - aligned + 3) &^ 3}, uint32(start - aligned)})
	}
	return out, nil
}

// gemm records C[m, n] (+)= sum_k A(m, k) B(k, n); see shaders/gemm.comp.
func (b *Backend) gemm(op, variant string, M, N, K, lda, ldc, aOff, cOff int, a, w, c vk.View, wbase, wrow uint32, acc bool) error {
	push := []uint32{uint32(M), uint32(N), uint32(K), uint32(lda), uint32(ldc), uint32(aOff), uint32(cOff), wbase, wrow, boolU(acc)}
	if M <= gemvRows && strings.HasPrefix(variant, "gemm_nt_") {
		// decoding: a tile of 64+ rows would be almost all padding.
		name := "gemv_" + strings.TrimPrefix(variant, "gemm_nt_")
		binds := []binding{in("activations", a), in("w", w), out("out", c)}
		if b.serial() {
			wg := b.wg(64)
			return b.dispatch(op, name, []uint32{wg, 1}, binds, push, ceilDiv(uint64(M)*uint64(N), uint64(wg)))
		}
		return b.dispatch(op, name, []uint32{b.wg(64), 0}, binds, push, uint64(M)*uint64(N))
	}
	g := b.tiles(M, N)
	if g.Serial {
		blocks := ceilDiv(uint64(M), uint64(g.TM)) * ceilDiv(uint64(N), uint64(g.TN))
		return b.dispatch(op, variant, g.spec(), []binding{in("activations", a), in("w", w), out("out", c)}, push, ceilDiv(blocks, uint64(g.threads())))
	}
	gx, gy := ceilDiv(uint64(N), uint64(g.BN)), ceilDiv(uint64(M), uint64(g.BM))
	if gx > uint64(b.info.MaxWorkgroupCount[0]) || gy > uint64(b.info.MaxWorkgroupCount[1]) {
		return fmt.Errorf("%s: a %dx%d product needs %dx%d workgroups, above the device's grid", op, M, N, gx, gy)
	}
	return b.dispatch2(op, variant, g.spec(), []binding{in("activations", a), in("w", w), out("out", c)}, push, uint32(gx), uint32(gy))
}

func (b *Backend) checkGEMM(op string, dims ...int) error {
	for _, d := range dims {
		if d >= 1<<31 {
			return fmt.Errorf("%s: dimension %d is too large for one launch", op, d)
		}
	}
	return nil
}

// MatMul: out (+)= x · Wᵀ, W dequantized inside the GEMM tile. Weights larger
// than one binding are split into row ranges (output column ranges).
func (b *Backend) MatMul(outT, xT, wT backend.Tensor, accumulate bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "matmul"
	o, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	w, err := b.weight(op, wT)
	if err != nil {
		return err
	}
	if x.cols != w.cols || o.rows != x.rows || o.cols != w.rows {
		return fmt.Errorf("%s: out %v = x %v · wᵀ for w %v: want x [n, %d] and out [n, %d]", op, o.shape, x.shape, w.shape, w.cols, w.rows)
	}
	if err := b.checkGEMM(op, o.n, x.n); err != nil {
		return err
	}
	ranges, err := b.rowRanges(op, w)
	if err != nil {
		return err
	}
	wrow := uint32(w.dt.RowBytes(w.cols))
	for _, r := range ranges {
		binds := []binding{in("x", x.view()).per(4 * uint64(x.cols)), in("w", r.view), out("out", o.view()).per(4 * uint64(o.cols))}
		err := b.split(op, x.rows, 1, binds, func(bs []binding, _, m int) error {
			return b.gemm(op, "gemm_nt_"+weightName[w.dt], m, r.r1-r.r0, x.cols, x.cols, o.cols, 0, r.r0,
				bs[0].v, bs[1].v, bs[2].v, r.base, wrow, accumulate)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// MatMulDX: dx (+)= dy · W. Weights larger than one binding are split into row
// ranges whose products are added in row order.
func (b *Backend) MatMulDX(dxT, dyT, wT backend.Tensor, accumulate bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "matmul dx"
	dx, err := b.getF32(op, "dx", dxT)
	if err != nil {
		return err
	}
	dy, err := b.getF32(op, "dy", dyT)
	if err != nil {
		return err
	}
	w, err := b.weight(op, wT)
	if err != nil {
		return err
	}
	if dy.cols != w.rows || dx.rows != dy.rows || dx.cols != w.cols {
		return fmt.Errorf("%s: dx %v = dy %v · w for w %v: want dy [n, %d] and dx [n, %d]", op, dx.shape, dy.shape, w.shape, w.rows, w.cols)
	}
	if err := b.checkGEMM(op, dx.n, dy.n); err != nil {
		return err
	}
	ranges, err := b.rowRanges(op, w)
	if err != nil {
		return err
	}
	wrow := uint32(w.dt.RowBytes(w.cols))
	for i, r := range ranges {
		binds := []binding{in("dy", dy.view()).per(4 * uint64(dy.cols)), in("w", r.view), out("dx", dx.view()).per(4 * uint64(dx.cols))}
		err := b.split(op, dy.rows, 1, binds, func(bs []binding, _, m int) error {
			return b.gemm(op, "gemm_nn_"+weightName[w.dt], m, w.cols, r.r1-r.r0, dy.cols, dx.cols, r.r0, 0,
				bs[0].v, bs[1].v, bs[2].v, r.base, wrow, accumulate || i > 0)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// MatMulDW: dw (+)= dyᵀ · x (F32).
func (b *Backend) MatMulDW(dwT, dyT, xT backend.Tensor, accumulate bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "matmul dw"
	dw, err := b.getF32(op, "dw", dwT)
	if err != nil {
		return err
	}
	dy, err := b.getF32(op, "dy", dyT)
	if err != nil {
		return err
	}
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	if dy.rows != x.rows || dw.rows != dy.cols || dw.cols != x.cols {
		return fmt.Errorf("%s: dw %v = dyᵀ · x for dy %v and x %v: want dw [%d, %d] and equal row counts", op, dw.shape, dy.shape, x.shape, dy.cols, x.cols)
	}
	if err := b.checkGEMM(op, dw.n, dy.n, x.n); err != nil {
		return err
	}
	// rows of dy and x beyond one binding are summed piece by piece, in order.
	// Rows of dw beyond one binding are computed range by range (A offset m0).
	binds := []binding{in("dy", dy.view()).per(4 * uint64(dy.cols)), in("x", x.view()).per(4 * uint64(x.cols)), out("dw", dw.view())}
	return b.split(op, x.rows, 1, binds, func(bs []binding, r0, k int) error {
		inner := []binding{bs[0].per(0), bs[1].per(0), out("dw", dw.view()).per(4 * uint64(dw.cols))}
		return b.split(op, dw.rows, 1, inner, func(is []binding, m0, m int) error {
			return b.gemm(op, "gemm_tn_f32", m, dw.cols, k, dy.cols, dw.cols, m0, 0,
				is[0].v, is[1].v, is[2].v, 0, uint32(4*x.cols), accumulate || r0 > 0)
		})
	})
}

// serial reports whether row kernels run one invocation per row (CPU devices)
// rather than one workgroup per row.
func (b *Backend) serial() bool {
	return b.serialMode == serialOn || b.info.Type == "cpu" && b.serialMode != serialOff
}
