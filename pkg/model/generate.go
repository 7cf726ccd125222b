package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling chooses the next token from logits.
type Sampling struct {
	Temperature float64 // 0 = greedy (argmax, lowest id on ties)
	TopK        int     // keep the K most likely tokens (0 = all)
	TopP        float64 // keep the smallest set whose probability reaches P (0 or 1 = all)
	Seed        uint64  // random stream for temperature > 0
}

// Validate checks the sampling parameters.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("temperature %g must be 0 (greedy) or positive", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("top-k %d must be 0 (off) or positive", s.TopK)
	case s.TopP < 0 || s.TopP > 1 || math.IsNaN(s.TopP):
		return fmt.Errorf("top-p %g must be in [0, 1]", s.TopP)
	}
	return nil
}

// Sampler draws tokens per a Sampling, deterministically for a seed.
type Sampler struct {
	s   Sampling
	rng *rand.Rand
	idx []int
	p   []float64
}

// NewSampler returns a sampler seeded with s.Seed.
func NewSampler(s Sampling) *Sampler {
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x6c6f7261))}
}

// Sample picks a token id from one row of logits.
func (sm *Sampler) Sample(logits []float32) int32 {
	if sm.s.Temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	n := len(logits)
	if cap(sm.idx) < n {
		sm.idx, sm.p = make([]int, n), make([]float64, n)
	}
	idx, p := sm.idx[:n], sm.p[:n]
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	k := n
	if sm.s.TopK > 0 && sm.s.TopK < n {
		k = sm.s.TopK
	}
	mx := float64(logits[idx[0]])
	sum := 0.0
	for i := 0; i < k; i++ {
		p[i] = math.Exp((float64(logits[idx[i]]) - mx) / sm.s.Temperature)
		sum += p[i]
	}
	if tp := sm.s.TopP; tp > 0 && tp < 1 {
		acc := 0.0
		for i := 0; i < k; i++ {
			acc += p[i] / sum
			if acc >= tp {
				k = i + 1
				break
			}
		}
		sum = 0
		for i := 0; i < k; i++ {
			sum += p[i]
		}
	}
	u := sm.rng.Float64() * sum
	for i := 0; i < k; i++ {
		u -= p[i]
		if u < 0 {
			return int32(idx[i])
		}
	}
	return int32(idx[k-1])
}

// Generate continues prompt (which must not be empty: start it with BOS) by
// up to maxTokens tokens through a KV cache, calling emit for each new token.
// It stops early after a token for which stop returns true (that token is not
// emitted) and returns the generated ids.
func (m *Model) Generate(prompt []int32, maxTokens int, s Sampling, stop func(int32) bool, emit func(int32) error) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt (start it with the BOS token)")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if maxTokens < 0 {
		return nil, fmt.Errorf("generate: max tokens %d is negative", maxTokens)
	}
	total := len(prompt) + maxTokens
	if cl := m.Config.ContextLen; cl > 0 && total > cl {
		return nil, fmt.Errorf("generate: %d prompt + %d new tokens exceed the model's context of %d: lower --max-tokens", len(prompt), maxTokens, cl)
	}
	for _, id := range prompt {
		if id < 0 || int(id) >= m.Config.Vocab {
			return nil, fmt.Errorf("generate: token id %d outside the vocabulary of %d", id, m.Config.Vocab)
		}
	}
	cache, err := m.NewCache(1, total)
	if err != nil {
		return nil, err
	}
	defer cache.Free()
	be := m.be
	sampler := NewSampler(s)
	logits := make([]float32, m.Config.Vocab)
	run := func(ids []int32, a *Activations) error {
		if err := be.Write(a.IDs, ids); err != nil {
			return err
		}
		if err := m.Forward(a, cache); err != nil {
			return err
		}
		all := make([]float32, a.Logits.Len())
		if len(ids) == 1 {
			all = logits
		}
		if err := be.Read(a.Logits, all); err != nil {
			return err
		}
		copy(logits, all[(len(ids)-1)*m.Config.Vocab:])
		return nil
	}
	if maxTokens == 0 {
		return nil, nil
	}
	pa, err := m.NewActivations(1, len(prompt), false)
	if err != nil {
		return nil, err
	}
	err = run(prompt, pa)
	pa.Free()
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	step, err := m.NewActivations(1, 1, false)
	if err != nil {
		return nil, err
	}
	defer step.Free()
	var out []int32
	for {
		id := sampler.Sample(logits)
		if stop != nil && stop(id) {
			return out, nil
		}
		out = append(out, id)
		if emit != nil {
			if err := emit(id); err != nil {
				return out, err
			}
		}
		if len(out) == maxTokens {
			return out, nil
		}
		if err := run([]int32{id}, step); err != nil {
			return out, fmt.Errorf("generate: %w", err)
		}
	}
}
