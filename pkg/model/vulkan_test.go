package model

import (
	"math"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/gguf"
)

// TestVulkanMatchesReference runs one training forward/backward and a
// cached generation step on Vulkan and on the reference backend and compares
// logits, losses and LoRA gradients.
func TestVulkanMatchesReference(t *testing.T) {
	vk, _, err := device.Open("vulkan")
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	defer vk.Close()
	path := synthModel(t, synthOptions{dim: 64, layers: 2, heads: 4, kv: 2, ffn: 96, vocab: 37, typ: gguf.Q4_0, seed: 41})
	type result struct{ logits, loss, grads []float32 }
	run := func(be backend.Backend) result {
		m, err := Load(path, be, LoadOptions{Quantize: "nf4"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		r := newRef64(t, path) // only to receive the adapter
		attachRandomLoRA(t, m, r, 4, 8, 0.1, 3)
		if err := m.EnableGrads(); err != nil {
			t.Fatal(err)
		}
		a, err := m.NewActivations(2, 9, true)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Free()
		ids := make([]int32, 18)
		labels := make([]int32, 18)
		for i := range ids {
			ids[i] = int32(i * 7 % 37)
			labels[i] = int32(i * 5 % 37)
		}
		labels[4] = IgnoreLabel
		for _, err := range []error{be.Write(a.IDs, ids), be.Write(a.Labels, labels), be.Write(a.Seed, []int32{9}),
			be.Fill(a.LossScale, 1.0/17), m.Forward(a, nil), m.Loss(a), m.Backward(a)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		var res result
		res.logits = make([]float32, a.Logits.Len())
		res.loss = make([]float32, a.Loss.Len())
		if err := be.Read(a.Logits, res.logits); err != nil {
			t.Fatal(err)
		}
		if err := be.Read(a.Loss, res.loss); err != nil {
			t.Fatal(err)
		}
		for _, ad := range m.LoRAs() {
			for _, g := range []backend.Tensor{ad.LoRA.GradA, ad.LoRA.GradB} {
				v := make([]float32, g.Len())
				if err := be.Read(g, v); err != nil {
					t.Fatal(err)
				}
				res.grads = append(res.grads, v...)
			}
		}
		gen, err := m.Generate([]int32{1, 2, 3}, 5, Sampling{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range gen {
			res.logits = append(res.logits, float32(id)) // greedy ids must agree too
		}
		return res
	}
	want, got := run(ref.New()), run(vk)
	compare := func(what string, g, w []float32, tol float64) {
		scale := 0.0
		for _, v := range w {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i := range w {
			if d := math.Abs(float64(g[i]-w[i])) / scale; d > tol || math.IsNaN(float64(g[i])) {
				t.Fatalf("%s[%d]: vulkan %g, reference %g (relative to max %g)", what, i, g[i], w[i], d)
			}
		}
	}
	compare("logits", got.logits, want.logits, 1e-4)
	compare("loss", got.loss, want.loss, 1e-4)
	compare("lora gradients", got.grads, want.grads, 1e-3)
}
