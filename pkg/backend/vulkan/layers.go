//go:build cgo

package vulkan

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
)

// ignoreLabel marks a label without loss or gradient.
const ignoreLabel = -100

// Embed: out[i, :] = dequant(table[ids[i], :]).
func (b *Backend) Embed(outT, tableT, idsT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "embed"
	o, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	table, err := b.get(op, "table", tableT)
	if err != nil {
		return err
	}
	if _, ok := weightName[table.dt]; !ok {
		return fmt.Errorf("%s: table %v has dtype %v: want f32, f16, q8_0, q4_0 or nf4", op, table.shape, table.dt)
	}
	ids, err := b.getI32(op, "ids", idsT)
	if err != nil {
		return err
	}
	if o.cols != table.cols || o.rows != ids.n {
		return fmt.Errorf("%s: out %v for ids %v from table %v: want out [%d, %d]", op, o.shape, ids.shape, table.shape, ids.n, table.cols)
	}
	if b.rec == nil {
		for i, id := range ids.shadow {
			if id < 0 || int(id) >= table.rows {
				return fmt.Errorf("%s: ids[%d] = %d is outside the table's %d rows", op, i, id, table.rows)
			}
		}
	}
	if err := checkN(op, o.n); err != nil {
		return err
	}
	ranges, err := b.rowRanges(op, table)
	if err != nil {
		return err
	}
	w := b.wg(256)
	wrow := uint32(table.dt.RowBytes(table.cols))
	for i, r := range ranges {
		binds := []binding{out("out", o.view()).per(4 * uint64(o.cols)), in("table", r.view), in("ids", ids.view()).per(4)}
		err := b.split(op, ids.n, 1, binds, func(bs []binding, _, m int) error {
			n := m * table.cols
			push := []uint32{uint32(n), uint32(table.cols), uint32(r.r0), uint32(r.r1), uint32(table.rows), r.base, wrow, boolU(i == 0)}
			return b.dispatch(op, "embed_"+weightName[table.dt], []uint32{w}, bs, push, ceilDiv(uint64(n), uint64(w)))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) normArgs(op string, names []string, ts []backend.Tensor, wT backend.Tensor) ([]*tensor, *tensor, error) {
	out := make([]*tensor, len(ts))
	for i, x := range ts {
		t, err := b.getF32(op, names[i], x)
		if err != nil {
			return nil, nil, err
		}
		if i > 0 && (t.n != out[0].n || t.cols != out[0].cols) {
			return nil, nil, fmt.Errorf("%s: %s %v and %s %v differ in shape", op, names[0], out[0].shape, names[i], t.shape)
		}
		out[i] = t
	}
	w, err := b.getF32(op, "w", wT)
	if err != nil {
		return nil, nil, err
	}
	if w.n != out[0].cols {
		return nil, nil, fmt.Errorf("%s: w %v for x %v: want %d elements (x's last dimension)", op, w.shape, out[0].shape, out[0].cols)
	}
	return out, w, checkN(op, out[0].n)
}

// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w.
func (b *Backend) RMSNorm(outT, xT, wT backend.Tensor, eps float32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "rms norm"
	ts, w, err := b.normArgs(op, []string{"out", "x"}, []backend.Tensor{outT, xT}, wT)
	if err != nil {
		return err
	}
	x := ts[1]
	rb := 4 * uint64(x.cols)
	return b.split(op, x.rows, 1, []binding{out("out", ts[0].view()).per(rb), in("x", x.view()).per(rb), in("w", w.view())}, func(bs []binding, _, m int) error {
		return b.dispatch(op, "rmsnorm", []uint32{b.redWG(128)}, bs, []uint32{uint32(m), uint32(x.cols), f32bits(eps), 0}, uint64(m))
	})
}

// RMSNormBackward: dx (+)= d/dx RMSNorm(x) · dy.
func (b *Backend) RMSNormBackward(dxT, dyT, xT, wT backend.Tensor, eps float32, accumulate bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "rms norm backward"
	ts, w, err := b.normArgs(op, []string{"dx", "dy", "x"}, []backend.Tensor{dxT, dyT, xT}, wT)
	if err != nil {
		return err
	}
	x := ts[2]
	rb := 4 * uint64(x.cols)
	binds := []binding{out("dx", ts[0].view()).per(rb), in("dy", ts[1].view()).per(rb), in("x", x.view()).per(rb), in("w", w.view())}
	return b.split(op, x.rows, 1, binds, func(bs []binding, _, m int) error {
		return b.dispatch(op, "rmsnorm_bwd", []uint32{b.redWG(128)}, bs, []uint32{uint32(m), uint32(x.cols), f32bits(eps), boolU(accumulate)}, uint64(m))
	})
}

type ropeKey struct {
	theta float32
	dims  int
}

type ropeTable struct {
	view vk.View
	n    int // positions covered
}

// ropeTabLen is the default number of positions whose cos/sin the host
// precomputes in float64 (as the reference does).
const ropeTabLen = 4096

func (b *Backend) ropeTable(p backend.RoPE, need int) (*ropeTable, error) {
	k := ropeKey{p.Theta, p.Dims}
	if t, ok := b.ropeTab[k]; ok && t.n >= need {
		return t, nil
	}
	half := p.Dims / 2
	n := ropeTabLen
	for n < need {
		n *= 2
	}
	// the table is one binding: positions past what fits are computed in the shader.
	n = max(1, min(n, int(b.maxBind/uint64(8*half))))
	tab := make([]float32, n*half*2)
	for pos := range n {
		for i := range half {
			ang := float64(pos) * math.Pow(float64(p.Theta), -2*float64(i)/float64(p.Dims))
			sin, cos := math.Sincos(ang)
			tab[(pos*half+i)*2] = float32(cos)
			tab[(pos*half+i)*2+1] = float32(sin)
		}
	}
	blk, err := b.dev.Memory().Alloc(uint64(4*len(tab)), false)
	if err != nil {
		return nil, fmt.Errorf("rope table: %w", err)
	}
	b.keep = append(b.keep, blk)
	view := vk.View{Buffer: blk.Buffer, Offset: blk.Offset, Size: uint64(4 * len(tab))}
	// upload records on the eager stream, also while a Program is recorded.
	if err := b.upload(view, unsafe.Slice((*byte)(unsafe.Pointer(&tab[0])), 4*len(tab))); err != nil {
		return nil, err
	}
	t := &ropeTable{view: view, n: n}
	b.ropeTab[k] = t
	return t, nil
}

// RoPE rotates x in place; cos/sin of positions below the table size come from
// a float64 host table, later ones are computed in the shader.
func (b *Backend) RoPE(xT, posT backend.Tensor, p backend.RoPE, inverse bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "rope"
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	pos, err := b.getI32(op, "pos", posT)
	if err != nil {
		return err
	}
	if p.Heads <= 0 || p.HeadDim <= 0 || p.Dims <= 0 || p.Dims > p.HeadDim || p.Dims%2 != 0 || !(p.Theta > 0) {
		return fmt.Errorf("%s: parameters %+v: want Heads, HeadDim > 0, an even Dims <= HeadDim and Theta > 0", op, p)
	}
	if p.Layout != backend.RoPENormal && p.Layout != backend.RoPENeoX {
		return fmt.Errorf("%s: unknown layout %d", op, p.Layout)
	}
	if x.cols != p.Heads*p.HeadDim {
		return fmt.Errorf("%s: x %v: want rows of Heads*HeadDim = %d*%d = %d", op, x.shape, p.Heads, p.HeadDim, p.Heads*p.HeadDim)
	}
	if err := checkN(op, x.n); err != nil {
		return err
	}
	need := 0
	for _, v := range pos.shadow {
		need = max(need, int(v)+1)
	}
	tab, err := b.ropeTable(p, min(need, 1<<17))
	if err != nil {
		return err
	}
	half := p.Dims / 2
	w := b.wg(256)
	// pieces are whole multiples of len(pos) rows, so row r keeps pos[r % len(pos)].
	binds := []binding{out("x", x.view()).per(4 * uint64(x.cols)), in("pos", pos.view()), in("table", tab.view)}
	return b.split(op, x.rows, pos.n, binds, func(bs []binding, _, m int) error {
		n := m * p.Heads * half
		push := []uint32{uint32(n), uint32(p.Heads), uint32(p.HeadDim), uint32(half), uint32(pos.n), f32bits(p.Theta),
			boolU(p.Layout == backend.RoPENeoX), boolU(inverse), uint32(tab.n)}
		return b.dispatch(op, "rope", []uint32{w}, bs, push, ceilDiv(uint64(n), uint64(w)))
	})
}

func (b *Backend) attentionArgs(op string, a backend.Attention, names []string, ts ...backend.Tensor) ([]*tensor, error) {
	if err := backend.CheckAttention(op, a, names, ts...); err != nil {
		return nil, err
	}
	out := make([]*tensor, len(ts))
	for i, x := range ts {
		if x == nil && names[i] == "probs" {
			continue
		}
		t, err := b.getF32(op, names[i], x)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// Attention: grouped-query causal attention with a materialised softmax.
func (b *Backend) Attention(outT, probsT, qT, kT, vT backend.Tensor, a backend.Attention) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "attention"
	ts, err := b.attentionArgs(op, a, []string{"out", "probs", "q", "k", "v"}, outT, probsT, qT, kT, vT)
	if err != nil {
		return err
	}
	rows := uint64(a.Batch) * uint64(a.Heads) * uint64(a.QLen)
	var pv vk.View
	if ts[1] != nil {
		pv = ts[1].view()
	} else if pv, err = b.scratchBuf("probs", 4*rows*uint64(a.KVLen)); err != nil {
		return err
	}
	qU, kvU, pU := attnUnits(a)
	binds := []binding{out("out", ts[0].view()).per(qU), out("probs", pv).per(pU), in("q", ts[2].view()).per(qU), in("k", ts[3].view()).per(kvU), in("v", ts[4].view()).per(kvU)}
	// sequences beyond one binding run in groups of whole sequences.
	return b.split(op, a.Batch, 1, binds, func(bs []binding, _, m int) error {
		push := []uint32{uint32(m), uint32(a.QLen), uint32(a.KVLen), uint32(a.KVCap), uint32(a.Heads), uint32(a.KVHeads), uint32(a.HeadDim), uint32(a.QOffset), f32bits(a.Scale)}
		wg, spec, groups := b.rowKernel(uint64(m) * uint64(a.Heads) * uint64(a.QLen))
		return b.dispatch(op, "attention", []uint32{wg, spec}, bs, push, groups)
	})
}

// attnUnits are the bytes per sequence of q-like tensors, k-like tensors and
// probabilities: attention splits over whole sequences.
func attnUnits(a backend.Attention) (q, kv, p uint64) {
	return 4 * uint64(a.QLen) * uint64(a.Heads) * uint64(a.HeadDim),
		4 * uint64(a.KVCap) * uint64(a.KVHeads) * uint64(a.HeadDim),
		4 * uint64(a.Heads) * uint64(a.QLen) * uint64(a.KVLen)
}

// AttentionBackward: dq, dk, dv from dout and the saved probabilities.
func (b *Backend) AttentionBackward(dqT, dkT, dvT, doutT, probsT, qT, kT, vT backend.Tensor, a backend.Attention) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "attention backward"
	if a.QLen != a.KVLen || a.KVCap != a.KVLen || a.QOffset != 0 {
		return fmt.Errorf("%s: parameters %+v: training attention needs QLen == KVLen == KVCap and QOffset == 0", op, a)
	}
	if probsT == nil {
		return fmt.Errorf("%s: probs is nil: run Attention with a probs tensor first", op)
	}
	ts, err := b.attentionArgs(op, a, []string{"dq", "dk", "dv", "dout", "probs", "q", "k", "v"}, dqT, dkT, dvT, doutT, probsT, qT, kT, vT)
	if err != nil {
		return err
	}
	dq, dk, dv, dout, probs, q, k, v := ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7]
	rows := uint64(a.Batch) * uint64(a.Heads) * uint64(a.QLen)
	ds, err := b.scratchBuf("dscores", 4*rows*uint64(a.KVLen))
	if err != nil {
		return err
	}
	qU, kvU, pU := attnUnits(a)
	binds := []binding{out("dq", dq.view()).per(qU), out("dscores", ds).per(pU), in("dout", dout.view()).per(qU), in("probs", probs.view()).per(pU), in("k", k.view()).per(kvU), in("v", v.view()).per(kvU)}
	err = b.split(op, a.Batch, 1, binds, func(bs []binding, _, m int) error {
		push := []uint32{uint32(m), uint32(a.QLen), uint32(a.Heads), uint32(a.KVHeads), uint32(a.HeadDim), f32bits(a.Scale)}
		wg, spec, groups := b.rowKernel(uint64(m) * uint64(a.Heads) * uint64(a.QLen))
		return b.dispatch(op, "attention_bwd_q", []uint32{wg, spec}, bs, push, groups)
	})
	if err != nil {
		return err
	}
	w := b.wg(64)
	binds = []binding{out("dk", dk.view()).per(kvU), out("dv", dv.view()).per(kvU), in("dscores", ds).per(pU), in("probs", probs.view()).per(pU), in("q", q.view()).per(qU), in("dout", dout.view()).per(qU)}
	return b.split(op, a.Batch, 1, binds, func(bs []binding, _, m int) error {
		push := []uint32{uint32(m), uint32(a.QLen), uint32(a.Heads), uint32(a.KVHeads), uint32(a.HeadDim)}
		n := uint64(m) * uint64(a.KVLen) * uint64(a.KVHeads) * uint64(a.HeadDim)
		return b.dispatch(op, "attention_bwd_kv", []uint32{w}, bs, push, ceilDiv(n, uint64(w)))
	})
}

// CrossEntropy: loss and (optionally) dlogits with a fused log-softmax.
func (b *Backend) CrossEntropy(lossT, dlogitsT, logitsT, labelsT, scaleT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "cross entropy"
	loss, err := b.getF32(op, "loss", lossT)
	if err != nil {
		return err
	}
	logits, err := b.getF32(op, "logits", logitsT)
	if err != nil {
		return err
	}
	labels, err := b.getI32(op, "labels", labelsT)
	if err != nil {
		return err
	}
	scale, err := b.getF32(op, "scale", scaleT)
	if err != nil {
		return err
	}
	n, vocab := logits.rows, logits.cols
	if loss.n != n || labels.n != n || scale.n != 1 {
		return fmt.Errorf("%s: logits %v, labels %v, loss %v, scale %v: want labels and loss of %d elements and scale of 1", op, logits.shape, labels.shape, loss.shape, scale.shape, n)
	}
	dlv, hasDL := b.dummy.View, false
	if dlogitsT != nil {
		dl, err := b.getF32(op, "dlogits", dlogitsT)
		if err != nil {
			return err
		}
		if dl.n != logits.n || dl.cols != vocab {
			return fmt.Errorf("%s: dlogits %v and logits %v differ in shape", op, dl.shape, logits.shape)
		}
		dlv, hasDL = dl.view(), true
	}
	if b.rec == nil {
		for i, l := range labels.shadow {
			if l != ignoreLabel && (l < 0 || int(l) >= vocab) {
				return fmt.Errorf("%s: labels[%d] = %d is outside the vocabulary of %d (use -100 to ignore a position)", op, i, l, vocab)
			}
		}
	}
	if err := checkN(op, logits.n); err != nil {
		return err
	}
	rb := 4 * uint64(vocab)
	binds := []binding{out("loss", loss.view()).per(4), in("dlogits", dlv), in("logits", logits.view()).per(rb), in("labels", labels.view()).per(4), in("scale", scale.view())}
	if hasDL {
		binds[1] = out("dlogits", dlv).per(rb)
	}
	return b.split(op, n, 1, binds, func(bs []binding, _, m int) error {
		return b.dispatch(op, "cross_entropy", []uint32{b.redWG(256)}, bs, []uint32{uint32(m), uint32(vocab), boolU(hasDL)}, uint64(m))
	})
}

// redWG is the size of workgroups that reduce with barriers: want on GPUs,
// 16 on CPU devices, where every barrier of a software workgroup costs a
// switch through all its invocations (lavapipe's attention ran 3x faster).
func (b *Backend) redWG(want uint32) uint32 {
	if b.info.Type == "cpu" {
		want = min(want, 16)
	}
	return b.wg(want)
}

// rowKernel returns the workgroup size, SERIAL specialization constant and
// workgroup count of a kernel over rows (attention): one workgroup per row,
// or on CPU devices one invocation per row.
func (b *Backend) rowKernel(rows uint64) (wg, serial uint32, groups uint64) {
	if b.serial() {
		wg = b.wg(64)
		return wg, 1, ceilDiv(rows, uint64(wg))
	}
	return b.redWG(64), 0, rows
}
