package backendtest

import (
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
)

// checkErrors calls operations with mismatched shapes on the backend under
// test: each must fail (when called, or at the next Sync) with an error that
// names the operation, instead of reading or writing out of bounds.
func checkErrors(k *kit) {
	be := k.be[test]
	f := func(shape ...int) backend.Tensor {
		return k.alloc("t", backend.F32, shape...).t[test]
	}
	i := func(data ...int32) backend.Tensor {
		return k.i32("ids", data, len(data)).t[test]
	}
	x34, w56, out35 := f(3, 4), f(5, 6), f(3, 5)
	cases := []struct {
		name, word string // word: the op's name as it should appear in the error (any case)
		call       func() error
	}{
		{"MatMul x [3 4] w [5 6]", "matmul", func() error { return be.MatMul(out35, x34, w56, false) }},
		{"MatMulDX dy [3 5] w [5 6] dx [3 4]", "matmul", func() error { return be.MatMulDX(x34, out35, w56, false) }},
		{"MatMulDW dy [3 5] x [3 4] dw [5 6]", "matmul", func() error { return be.MatMulDW(w56, out35, x34, false) }},
		{"Mul lengths 12, 12, 30", "mul", func() error { return be.Mul(x34, x34, w56) }},
		{"AddScaled lengths 12, 30", "add", func() error { return be.AddScaled(x34, w56, 1) }},
		{"AddBias out [3 4] b [5]", "bias", func() error { return be.AddBias(x34, f(5)) }},
		{"SumRows out [5] x [3 4]", "sum", func() error { return be.SumRows(f(5), x34, false) }},
		{"RMSNorm x [3 4] w [5]", "norm", func() error { return be.RMSNorm(x34, x34, f(5), 1e-5) }},
		{"Copy 10 elements at 5 into [12]", "copy", func() error { return be.Copy(x34, 5, w56, 0, 10) }},
		{"Embed table [5 6] into out [2 4]", "embed", func() error { return be.Embed(f(2, 4), w56, i(0, 1)) }},
		{"RoPE x [3 4] with heads 3×2", "rope", func() error {
			return be.RoPE(x34, i(0), backend.RoPE{Heads: 3, HeadDim: 2, Dims: 2, Theta: 1e4}, false)
		}},
		{"Attention 3 heads over 2 kv heads", "attention", func() error {
			a := backend.Attention{Batch: 1, QLen: 2, KVLen: 2, KVCap: 2, Heads: 3, KVHeads: 2, HeadDim: 2, Scale: 1}
			return be.Attention(f(2, 6), nil, f(2, 6), f(2, 4), f(2, 4), a)
		}},
		{"AttentionBackward with QOffset 1", "attention", func() error {
			a := backend.Attention{Batch: 1, QLen: 2, KVLen: 2, KVCap: 2, Heads: 1, KVHeads: 1, HeadDim: 2, QOffset: 1, Scale: 1}
			return be.AttentionBackward(f(2, 2), f(2, 2), f(2, 2), f(2, 2), f(4), f(2, 2), f(2, 2), f(2, 2), a)
		}},
		{"SwiGLU lengths 12, 12, 30", "swiglu", func() error { return be.SwiGLU(x34, x34, w56) }},
		{"CrossEntropy logits [3 4] labels [2]", "entropy", func() error {
			return be.CrossEntropy(f(3), nil, x34, i(0, 1), f(1))
		}},
		{"AdamW scalars [3]", "adamw", func() error { return be.AdamW(x34, x34, x34, x34, f(3), f(1)) }},
	}
	for _, c := range cases {
		err := c.call()
		if err == nil {
			err = be.Sync()
		}
		if err == nil {
			k.t.Errorf("Errors: %s: accepted (no error from the call or the next Sync); want an error naming the op and the shapes", c.name)
			continue
		}
		if !strings.Contains(strings.ToLower(strings.ReplaceAll(err.Error(), " ", "")), c.word) {
			k.t.Errorf("Errors: %s: error %q does not name the operation (%q)", c.name, err, c.word)
		}
	}
	if err := be.Sync(); err != nil {
		k.t.Errorf("Errors: Sync after rejected calls: %v (a rejected call must not poison later work)", err)
	}
}
