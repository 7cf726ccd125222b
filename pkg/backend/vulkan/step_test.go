//go:build cgo

package vulkan

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
)

// tinyStep is one LoRA training step of a one-layer LLaMA-style model
// (GQA attention, SwiGLU, tied LM head) over quantized frozen weights, written
// against backend.Backend only.
type tinyStep struct {
	be   backend.Backend
	t    map[string]backend.Tensor
	outs []string // tensors compared after the step
}

const (
	sV, sD, sH, sKVH, sHD, sF, sR, sB, sT = 37, 64, 4, 2, 16, 96, 4, 2, 9
)

func newTinyStep(t *testing.T, be backend.Backend, seed uint64) *tinyStep {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &tinyStep{be: be, t: map[string]backend.Tensor{}}
	n := sB * sT
	weight := func(name string, dt backend.DType, rows, cols int, scale float64) {
		w, err := be.FromBytes(dt, []int{rows, cols}, quantize(t, dt, randVec(r, rows*cols, scale), cols))
		must(t, err)
		s.t[name] = w
	}
	f32 := func(name string, data []float32, shape ...int) {
		s.t[name] = upload(t, be, data, shape...)
	}
	zeros := func(name string, shape ...int) {
		x, err := be.Alloc(backend.F32, shape...)
		must(t, err)
		s.t[name] = x
	}
	weight("emb", backend.F32, sV, sD, 1)
	weight("wq", backend.Q4_0, sH*sHD, sD, 0.2)
	weight("wk", backend.Q8_0, sKVH*sHD, sD, 0.2)
	weight("wv", backend.NF4, sKVH*sHD, sD, 0.2)
	weight("wo", backend.F16, sD, sH*sHD, 0.2)
	weight("wg", backend.Q4_0, sF, sD, 0.2)
	weight("wu", backend.F32, sF, sD, 0.2)
	weight("wd", backend.Q4_0, sD, sF, 0.2)
	for _, nm := range []string{"n1", "n2", "n3"} {
		v := randVec(r, sD, 0.2)
		for i := range v {
			v[i]++
		}
		f32(nm, v, sD)
	}
	f32("aq", randVec(r, sR*sD, 0.1), sR, sD)
	f32("bq", randVec(r, sH*sHD*sR, 0.1), sH*sHD, sR)
	f32("av", randVec(r, sR*sD, 0.1), sR, sD)
	f32("bv", randVec(r, sKVH*sHD*sR, 0.1), sKVH*sHD, sR)
	for _, nm := range []string{"aq", "bq", "av", "bv"} {
		shape := s.t[nm].Shape()
		zeros("d"+nm, shape...)
		zeros("m"+nm, shape...)
		zeros("v"+nm, shape...)
	}
	ids := make([]int32, n)
	labels := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(sV))
		labels[i] = int32(r.IntN(sV))
	}
	labels[0], labels[sT] = -100, -100
	pos := make([]int32, sT)
	for i := range pos {
		pos[i] = int32(i + 3)
	}
	for nm, v := range map[string][]int32{"ids": ids, "labels": labels, "pos": pos, "seed": {42}} {
		x, err := be.Alloc(backend.I32, len(v))
		must(t, err)
		must(t, be.Write(x, v))
		s.t[nm] = x
	}
	f32("scale", []float32{1 / float32(n-2)}, 1)
	f32("scalars", []float32{1e-2, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001, 0.5}, backend.AdamWScalarsLen)
	for nm, shape := range map[string][]int{
		"h": {n, sD}, "x1": {n, sD}, "xd": {n, sD}, "q": {n, sH * sHD}, "k": {n, sKVH * sHD}, "v": {n, sKVH * sHD},
		"xaq": {n, sR}, "xav": {n, sR}, "tq": {n, sH * sHD}, "tv": {n, sKVH * sHD}, "att": {n, sH * sHD},
		"probs": {sB, sH, sT, sT}, "o": {n, sD}, "h2": {n, sD}, "x2": {n, sD}, "g": {n, sF}, "u": {n, sF}, "a": {n, sF},
		"d": {n, sD}, "h3": {n, sD}, "xf": {n, sD}, "logits": {n, sV}, "dlogits": {n, sV}, "loss": {n},
		"dxf": {n, sD}, "dh3": {n, sD}, "da": {n, sF}, "dg": {n, sF}, "du": {n, sF}, "dx2": {n, sD}, "dh2": {n, sD},
		"datt": {n, sH * sHD}, "dq": {n, sH * sHD}, "dk": {n, sKVH * sHD}, "dv": {n, sKVH * sHD},
		"dxaq": {n, sR}, "dxav": {n, sR}, "sumsq": {1},
	} {
		zeros(nm, shape...)
	}
	s.outs = []string{"loss", "logits", "dlogits", "dh2", "dq", "dk", "dv", "daq", "dbq", "dav", "dbv", "sumsq", "aq", "bq", "av", "bv", "mbq", "vbq"}
	return s
}

func (s *tinyStep) run() error {
	be, t := s.be, s.t
	att := backend.Attention{Batch: sB, QLen: sT, KVLen: sT, KVCap: sT, Heads: sH, KVHeads: sKVH, HeadDim: sHD, Scale: 1 / float32(math.Sqrt(sHD))}
	rope := backend.RoPE{Heads: sH, HeadDim: sHD, Dims: sHD, Theta: 10000, Layout: backend.RoPENormal}
	ropeK := rope
	ropeK.Heads = sKVH
	steps := []func() error{
		func() error { return be.Embed(t["h"], t["emb"], t["ids"]) },
		func() error { return be.RMSNorm(t["x1"], t["h"], t["n1"], 1e-5) },
		func() error { return be.Dropout(t["xd"], t["x1"], t["seed"], 1, 0.1) },
		// q and v with LoRA (alpha = r, so the scale is 1)
		func() error { return be.MatMul(t["q"], t["x1"], t["wq"], false) },
		func() error { return be.MatMul(t["xaq"], t["xd"], t["aq"], false) },
		func() error { return be.MatMul(t["q"], t["xaq"], t["bq"], true) },
		func() error { return be.MatMul(t["k"], t["x1"], t["wk"], false) },
		func() error { return be.MatMul(t["v"], t["x1"], t["wv"], false) },
		func() error { return be.MatMul(t["xav"], t["xd"], t["av"], false) },
		func() error { return be.MatMul(t["v"], t["xav"], t["bv"], true) },
		func() error { return be.RoPE(t["q"], t["pos"], rope, false) },
		func() error { return be.RoPE(t["k"], t["pos"], ropeK, false) },
		func() error { return be.Attention(t["att"], t["probs"], t["q"], t["k"], t["v"], att) },
		func() error { return be.MatMul(t["o"], t["att"], t["wo"], false) },
		func() error { return be.Copy(t["h2"], 0, t["h"], 0, -1) },
		func() error { return be.AddScaled(t["h2"], t["o"], 1) },
		func() error { return be.RMSNorm(t["x2"], t["h2"], t["n2"], 1e-5) },
		func() error { return be.MatMul(t["g"], t["x2"], t["wg"], false) },
		func() error { return be.MatMul(t["u"], t["x2"], t["wu"], false) },
		func() error { return be.SwiGLU(t["a"], t["g"], t["u"]) },
		func() error { return be.MatMul(t["d"], t["a"], t["wd"], false) },
		func() error { return be.Copy(t["h3"], 0, t["h2"], 0, -1) },
		func() error { return be.AddScaled(t["h3"], t["d"], 1) },
		func() error { return be.RMSNorm(t["xf"], t["h3"], t["n3"], 1e-5) },
		func() error { return be.MatMul(t["logits"], t["xf"], t["emb"], false) },
		func() error { return be.CrossEntropy(t["loss"], t["dlogits"], t["logits"], t["labels"], t["scale"]) },
		// backward
		func() error { return be.MatMulDX(t["dxf"], t["dlogits"], t["emb"], false) },
		func() error { return be.RMSNormBackward(t["dh3"], t["dxf"], t["h3"], t["n3"], 1e-5, false) },
		func() error { return be.Copy(t["dh2"], 0, t["dh3"], 0, -1) },
		func() error { return be.MatMulDX(t["da"], t["dh3"], t["wd"], false) },
		func() error { return be.SwiGLUBackward(t["dg"], t["du"], t["da"], t["g"], t["u"]) },
		func() error { return be.MatMulDX(t["dx2"], t["dg"], t["wg"], false) },
		func() error { return be.MatMulDX(t["dx2"], t["du"], t["wu"], true) },
		func() error { return be.RMSNormBackward(t["dh2"], t["dx2"], t["h2"], t["n2"], 1e-5, true) },
		func() error { return be.MatMulDX(t["datt"], t["dh2"], t["wo"], false) },
		func() error {
			return be.AttentionBackward(t["dq"], t["dk"], t["dv"], t["datt"], t["probs"], t["q"], t["k"], t["v"], att)
		},
		func() error { return be.RoPE(t["dq"], t["pos"], rope, true) },
		func() error { return be.RoPE(t["dk"], t["pos"], ropeK, true) },
		func() error { return be.MatMulDW(t["dbq"], t["dq"], t["xaq"], false) },
		func() error { return be.MatMulDX(t["dxaq"], t["dq"], t["bq"], false) },
		func() error { return be.MatMulDW(t["daq"], t["dxaq"], t["xd"], false) },
		func() error { return be.MatMulDW(t["dbv"], t["dv"], t["xav"], false) },
		func() error { return be.MatMulDX(t["dxav"], t["dv"], t["bv"], false) },
		func() error { return be.MatMulDW(t["dav"], t["dxav"], t["xd"], false) },
		func() error { return be.SumSquares(t["sumsq"], false, t["daq"], t["dbq"], t["dav"], t["dbv"]) },
	}
	for _, nm := range []string{"aq", "bq", "av", "bv"} {
		steps = append(steps, func() error { return be.AdamW(t[nm], t["d"+nm], t["m"+nm], t["v"+nm], t["scalars"], t["sumsq"]) })
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (s *tinyStep) results(t *testing.T) map[string][]float32 {
	out := map[string][]float32{}
	for _, nm := range s.outs {
		out[nm] = read(t, s.be, s.t[nm])
	}
	return out
}

// TestTrainingStepParity runs one LoRA training step (forward, backward,
// grad-norm clipping and AdamW over q4_0/q8_0/nf4/f16 frozen weights) on the
// reference eagerly and on Vulkan as a recorded Program: loss, gradients and
// updated adapters agree to 1e-4 relative (5e-4 for gradients, which pass
// through every backward op). Replaying the Program from the same state gives
// bit-identical results, and so does running the step eagerly.
func TestTrainingStepParity(t *testing.T) {
	vb := open(t, Options{})
	rb := ref.New()
	defer rb.Close()

	want := newTinyStep(t, rb, 1)
	must(t, want.run())
	wantRes := want.results(t)

	var runs []map[string][]float32
	for range 2 {
		got := newTinyStep(t, vb, 1)
		prog, err := vb.Record(got.run)
		must(t, err)
		must(t, prog.Run())
		runs = append(runs, got.results(t))
		prog.Release()
	}
	eager := newTinyStep(t, vb, 1)
	must(t, eager.run())
	runs = append(runs, eager.results(t))

	for _, nm := range want.outs {
		tol := 1e-4
		if nm[0] == 'd' || nm == "sumsq" || nm[0] == 'm' || nm[0] == 'v' {
			tol = 5e-4
		}
		if err := close(runs[0][nm], wantRes[nm], tol); err != nil {
			t.Errorf("%s: vulkan vs reference: %v", nm, err)
		}
		for i := 1; i < len(runs); i++ {
			for j := range runs[0][nm] {
				if math.Float32bits(runs[i][nm][j]) != math.Float32bits(runs[0][nm][j]) {
					t.Errorf("%s[%d]: run %d gave %v, run 0 %v: not bit-identical", nm, j, i, runs[i][nm][j], runs[0][nm][j])
					break
				}
			}
		}
	}
	var loss float64
	for _, l := range wantRes["loss"] {
		loss += float64(l)
	}
	if loss == 0 || wantRes["sumsq"][0] == 0 {
		t.Fatalf("degenerate step: loss %v, grad sumsq %v", loss, wantRes["sumsq"][0])
	}
}
