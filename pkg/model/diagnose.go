package model

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// FirstNonFinite finds where a NaN or Inf first appears in the activations
// of the last training forward pass, walking the model in forward order
// (embedding, then per layer: attention input, q, k, v, attention output,
// residual, FFN input, gate, up, activation, output; then the logits). It
// returns a description such as "layer 3 gate_proj output" and false when
// every value is finite. It reads the activations back from the device, so
// it is for diagnosis after something went wrong, not for every step.
func (m *Model) FirstNonFinite(a *Activations) (string, bool, error) {
	if !a.Train {
		return "", false, fmt.Errorf("diagnose: needs training activations (inference ones reuse their buffers)")
	}
	check := func(t backend.Tensor) (bool, error) {
		if t == nil {
			return false, nil
		}
		buf := make([]float32, t.Len())
		if err := m.be.Read(t, buf); err != nil {
			return false, err
		}
		for _, v := range buf {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return true, nil
			}
		}
		return false, nil
	}
	if bad, err := check(a.x[0]); err != nil || bad {
		return "the token embeddings", bad, err
	}
	for l := range m.Layers {
		la := &a.layers[l]
		steps := []struct {
			what string
			t    backend.Tensor
		}{
			{"attention norm", la.xn1}, {"q_proj output", la.q}, {"k_proj output", la.k}, {"v_proj output", la.v},
			{"attention", la.att}, {"attention residual", la.h}, {"ffn norm", la.xn2},
			{"gate_proj output", la.gate}, {"up_proj output", la.up}, {"SwiGLU", la.act}, {"block output", a.x[l+1]},
		}
		for _, s := range steps {
			bad, err := check(s.t)
			if err != nil {
				return "", false, err
			}
			if bad {
				return fmt.Sprintf("layer %d %s", l, s.what), true, nil
			}
		}
	}
	if bad, err := check(a.Logits); err != nil || bad {
		return "the logits", bad, err
	}
	return "", false, nil
}
