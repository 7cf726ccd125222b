package model

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
)

func TestWindows(t *testing.T) {
	for _, tc := range []struct {
		n, ctx, stride int
		want           []Window
	}{
		{10, 4, 2, []Window{{0, 4, 1}, {2, 6, 4}, {4, 8, 6}, {6, 10, 8}}},
		{10, 4, 4, []Window{{0, 4, 1}, {4, 8, 5}, {8, 10, 9}}},
		{3, 8, 8, []Window{{0, 3, 1}}},
		{9, 4, 4, []Window{{0, 4, 1}, {4, 8, 5}, {8, 9, 9}}}, // the tail has no target
	} {
		if got := Windows(tc.n, tc.ctx, tc.stride); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Windows(%d, %d, %d) = %v, want %v", tc.n, tc.ctx, tc.stride, got, tc.want)
		}
	}
}

// TestPerplexityMatchesFloat64 recomputes the sliding-window perplexity with
// the float64 reference and the Hugging Face recipe written out here
// (labels[:-trg_len] = -100, trg_len = end - prev_end).
func TestPerplexityMatchesFloat64(t *testing.T) {
	cases := []struct {
		name        string
		path        string
		ctx, stride int
		batch       int
		n           int
	}{
		{"stories-overlap", "", 12, 5, 3, 41},
		{"stories-disjoint", "", 10, 10, 2, 35},
		{"synth-stride1", "synth", 6, 1, 4, 13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = sharedData(t, "models/stories260K.gguf")
			} else {
				path = synthModel(t, synthOptions{dim: 16, layers: 1, heads: 2, kv: 1, ffn: 24, vocab: 23, typ: gguf.F16, seed: 8})
			}
			m := load(t, path, LoadOptions{})
			r := newRef64(t, path)
			rng := rand.New(rand.NewPCG(uint64(tc.n), 1))
			ids := []int32{1}
			for len(ids) < tc.n {
				ids = append(ids, int32(3+rng.IntN(m.Config.Vocab-3)))
			}
			got, err := m.Perplexity(context.Background(), ids, PerplexityOptions{Ctx: tc.ctx, Stride: tc.stride, Batch: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			// Independent recomputation.
			total, count, windows, sumPPL := 0.0, 0, 0, 0.0
			prevEnd := 0
			for begin := 0; begin < len(ids); begin += tc.stride {
				end := begin + tc.ctx
				if end > len(ids) {
					end = len(ids)
				}
				trg := end - prevEnd
				in := ids[begin:end]
				logits := r.forward(in, 0, 0)
				nll, cnt := 0.0, 0
				for j := 1; j < len(in); j++ { // label j is predicted by position j-1
					if j >= len(in)-trg {
						nll += nll64(logits[j-1], in[j])
						cnt++
					}
				}
				if cnt > 0 {
					total += nll
					count += cnt
					windows++
					sumPPL += math.Exp(nll / float64(cnt))
				}
				prevEnd = end
				if end == len(ids) {
					break
				}
			}
			want := math.Exp(total / float64(count))
			if got.Tokens != count || got.Windows != windows {
				t.Fatalf("scored %d tokens in %d windows, reference %d in %d", got.Tokens, got.Windows, count, windows)
			}
			if d := math.Abs(got.Perplexity-want) / want; d > 1e-4 {
				t.Fatalf("perplexity %g, float64 reference %g (relative %g)", got.Perplexity, want, d)
			}
			wm := sumPPL / float64(windows)
			if d := math.Abs(got.WindowMean-wm) / wm; d > 1e-4 {
				t.Fatalf("window mean %g, float64 reference %g", got.WindowMean, wm)
			}
			t.Logf("perplexity %.6f (reference %.6f), window mean %.6f, %d tokens", got.Perplexity, want, got.WindowMean, got.Tokens)
		})
	}
}

func TestPerplexityErrors(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 8, layers: 1, heads: 2, kv: 2, ffn: 8, vocab: 5, typ: gguf.F32, seed: 1})
	m := load(t, path, LoadOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		ids []int32
		o   PerplexityOptions
	}{
		{[]int32{1}, PerplexityOptions{Ctx: 4}},
		{[]int32{1, 2, 3}, PerplexityOptions{Ctx: 1}},
		{[]int32{1, 2, 3}, PerplexityOptions{Ctx: 4, Stride: 5}},
		{[]int32{1, 2, 9}, PerplexityOptions{Ctx: 4}},
		{[]int32{1, 2, 3}, PerplexityOptions{Ctx: 65}}, // beyond context_length 64
	} {
		if _, err := m.Perplexity(ctx, tc.ids, tc.o); err == nil {
			t.Errorf("Perplexity(%v, %+v) succeeded, want an error", tc.ids, tc.o)
		}
	}
}

func TestSampler(t *testing.T) {
	logits := []float32{0.5, 2, 1, 2, -1}
	if got := NewSampler(Sampling{}).Sample(logits); got != 1 {
		t.Fatalf("greedy picked %d, want 1 (first maximum)", got)
	}
	if got := NewSampler(Sampling{Temperature: 5, TopK: 1, Seed: 3}).Sample(logits); got != 1 {
		t.Fatalf("top-k 1 picked %d, want 1", got)
	}
	if got := NewSampler(Sampling{Temperature: 1, TopP: 0.01, Seed: 3}).Sample(logits); got != 1 {
		t.Fatalf("top-p 0.01 picked %d, want 1", got)
	}
	// Frequencies follow softmax(logits / T) restricted to the top 3.
	s := NewSampler(Sampling{Temperature: 0.7, TopK: 3, Seed: 42})
	const n = 60000
	counts := make([]int, len(logits))
	for range n {
		counts[s.Sample(logits)]++
	}
	z := 0.0
	for _, i := range []int{1, 2, 3} {
		z += math.Exp(float64(logits[i]) / 0.7)
	}
	for i, c := range counts {
		want := 0.0
		if i >= 1 && i <= 3 {
			want = math.Exp(float64(logits[i])/0.7) / z
		}
		if got := float64(c) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("token %d drawn with frequency %.4f, want %.4f", i, got, want)
		}
	}
	// Same seed, same draws.
	a, b := NewSampler(Sampling{Temperature: 1, Seed: 9}), NewSampler(Sampling{Temperature: 1, Seed: 9})
	for range 100 {
		if a.Sample(logits) != b.Sample(logits) {
			t.Fatal("two samplers with the same seed diverged")
		}
	}
}

// TestGenerateGreedyMatchesFullForward: generation through the KV cache picks
// the argmax of a full forward pass over the growing sequence at every step.
func TestGenerateGreedyMatchesFullForward(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 16, layers: 2, heads: 4, kv: 1, ffn: 24, vocab: 29, typ: gguf.F32, seed: 12})
	m := load(t, path, LoadOptions{})
	prompt := []int32{1, 7, 3}
	var emitted []int32
	got, err := m.Generate(prompt, 10, Sampling{}, nil, func(id int32) error { emitted = append(emitted, id); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, emitted) || len(got) != 10 {
		t.Fatalf("returned %v, emitted %v", got, emitted)
	}
	r := newRef64(t, path)
	seq := append([]int32(nil), prompt...)
	for i := range got {
		lg := r.forward(seq, 0, 0)
		last := lg[len(lg)-1]
		best := 0
		for j := range last {
			if last[j] > last[best] {
				best = j
			}
		}
		if int32(best) != got[i] {
			t.Fatalf("token %d: generated %d, float64 argmax %d", i, got[i], best)
		}
		seq = append(seq, got[i])
	}
	stopped, err := m.Generate(prompt, 10, Sampling{}, func(id int32) bool { return id == got[2] }, nil)
	if err != nil || len(stopped) > 2 {
		t.Fatalf("stop at %d: got %v, %v", got[2], stopped, err)
	}
}
