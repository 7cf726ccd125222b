package backendtest

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// step is a small training-like chain used to check Record/Program replay.
type step struct {
	ids, labels, seed, scale       *dual // inputs rewritten between runs
	table, w, normW, bias          *dual // fixed
	h, hn, logits, loss, dl, dh, d *dual // intermediates and outputs
	ss                             *dual
}

const (
	stepN     = 7
	stepVocab = 37
	stepDim   = 64
)

func (k *kit) newStep() *step {
	st := &step{
		ids:    k.alloc("ids", backend.I32, stepN),
		labels: k.alloc("labels", backend.I32, stepN),
		seed:   k.alloc("seed", backend.I32, 1),
		scale:  k.alloc("scale", backend.F32, 1),
		table:  k.weight("table", backend.F16, stepVocab, stepDim),
		w:      k.weight("w", backend.Q4_0, stepVocab, stepDim),
		normW:  k.normWeight(stepDim),
		bias:   k.f32("bias", k.vec(stepVocab, 1), stepVocab),
		h:      k.alloc("h", backend.F32, stepN, stepDim),
		hn:     k.alloc("hn", backend.F32, stepN, stepDim),
		logits: k.alloc("logits", backend.F32, stepN, stepVocab),
		loss:   k.alloc("loss", backend.F32, stepN),
		dl:     k.alloc("dlogits", backend.F32, stepN, stepVocab),
		dh:     k.alloc("dh", backend.F32, stepN, stepDim),
		d:      k.alloc("dropped", backend.F32, stepN, stepDim),
		ss:     k.alloc("sumsq", backend.F32, 1),
	}
	return st
}

func (st *step) outputs() []*dual { return []*dual{st.logits, st.loss, st.dl, st.dh, st.d, st.ss} }

// fn returns the chain of operations on side s.
func (st *step) fn(be backend.Backend, s int) func() error {
	return func() error {
		ops := []func() error{
			func() error { return be.Embed(st.h.t[s], st.table.t[s], st.ids.t[s]) },
			func() error { return be.RMSNorm(st.hn.t[s], st.h.t[s], st.normW.t[s], 1e-5) },
			func() error { return be.MatMul(st.logits.t[s], st.hn.t[s], st.w.t[s], false) },
			func() error { return be.AddBias(st.logits.t[s], st.bias.t[s]) },
			func() error {
				return be.CrossEntropy(st.loss.t[s], st.dl.t[s], st.logits.t[s], st.labels.t[s], st.scale.t[s])
			},
			func() error { return be.MatMulDX(st.dh.t[s], st.dl.t[s], st.w.t[s], false) },
			func() error { return be.Dropout(st.d.t[s], st.dh.t[s], st.seed.t[s], 1, 0.25) },
			func() error { return be.SumSquares(st.ss.t[s], false, st.d.t[s], st.loss.t[s]) },
		}
		for _, op := range ops {
			if err := op(); err != nil {
				return err
			}
		}
		return nil
	}
}

// setInputs writes one set of per-step inputs to both sides.
func (k *kit) setInputs(st *step, variant int) {
	ids := k.ints(stepN, 0, stepVocab)
	labels := k.ints(stepN, 0, stepVocab)
	labels[variant%stepN] = -100
	k.write(st.ids, ids)
	k.write(st.labels, labels)
	k.write(st.seed, []int32{int32(1000 + variant)})
	k.write(st.scale, []float32{1 / float32(stepN-1)})
}

func (k *kit) readAll(ds []*dual, s int) [][]float32 {
	out := make([][]float32, len(ds))
	for i, d := range ds {
		out[i] = k.read(d, s)
	}
	return out
}

// sameBits reports the first element where a and b differ in bits.
func (k *kit) sameBits(what string, ds []*dual, a, b [][]float32) {
	k.t.Helper()
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				k.t.Errorf("Record: %s: %s%s = %.9g vs %.9g: results must be bit-identical", what, ds[i].name, index(ds[i].shape, j), a[i][j], b[i][j])
				break
			}
		}
	}
}

// checkRecord records the chain once per side, replays it with inputs rewritten
// between runs, and compares with eager execution and with the reference.
func checkRecord(k *kit) {
	st := k.newStep()
	outs := st.outputs()
	var progs [2]backend.Program
	for s := range 2 {
		p, err := k.be[s].Record(st.fn(k.be[s], s))
		if err != nil {
			if s == test {
				k.t.Fatalf("Record: backend returned error: %v", err)
			}
			k.t.Fatalf("Record: reference returned error: %v", err)
		}
		progs[s] = p
		defer p.Release()
	}
	runAll := func(what string) [2][][]float32 {
		k.t.Helper()
		var res [2][][]float32
		for s := range 2 {
			if err := progs[s].Run(); err != nil {
				k.t.Fatalf("Record: %s: Program.Run on the %s: %v", what, sideName(s), err)
			}
			res[s] = k.readAll(outs, s)
		}
		for i, d := range outs {
			k.compare("Record", "", what, d, res[test][i], res[refr][i])
		}
		return res
	}

	k.setInputs(st, 0)
	a := runAll("replay 1 (inputs A)")
	k.setInputs(st, 1)
	b := runAll("replay 2 (inputs B written after replay 1)")
	if lossesEqual(a[test][1], b[test][1]) {
		k.t.Errorf("Record: replay 2 gave the same loss as replay 1 after new inputs were written: the program does not read its inputs at run time")
	}
	again := runAll("replay 3 (inputs B again)")
	k.sameBits("two replays with the same inputs", outs, b[test], again[test])

	// Eager execution of the same chain with inputs B on the backend under test.
	for _, d := range outs {
		if err := k.be[test].Fill(d.t[test], -7); err != nil {
			k.t.Fatalf("Record: Fill: %v", err)
		}
	}
	if err := st.fn(k.be[test], test)(); err != nil {
		k.t.Fatalf("Record: eager chain: %v", err)
	}
	k.sameBits(fmt.Sprintf("replay vs eager (%d ops)", 8), outs, b[test], k.readAll(outs, test))
}

func lossesEqual(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
