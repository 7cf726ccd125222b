// Package examplestest provides a small deterministic tokenizer for tests of the data stages.
package examplestest

import (
	"strings"
	"sync"

	"github.com/lora-dev/lora/pkg/tokenizer"
)

// Fake is a word-level tokenizer with a vocabulary that grows as words
// appear: the first word seen gets id 0, so tests meet a real token 0. Pieces
// are a word with at most one leading space, a single space, or a single
// newline; with DummyPrefix the text is encoded as " "+text, as SentencePiece
// does. BOS and EOS have ids far above the words'.
type Fake struct {
	DummyPrefix bool
	NoBOS       bool

	mu     sync.Mutex
	ids    map[string]int32
	pieces []string
}

// BOS and EOS ids of Fake.
const (
	BOS int32 = 1 << 20
	EOS int32 = 1<<20 + 1
)

// Pieces splits s the way Fake does (without the dummy prefix).
func Pieces(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i
		switch s[i] {
		case '\n':
			j = i + 1
		case ' ':
			j = i + 1
			for j < len(s) && s[j] != ' ' && s[j] != '\n' {
				j++
			}
		default:
			for j < len(s) && s[j] != ' ' && s[j] != '\n' {
				j++
			}
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// Encode encodes text, with BOS and EOS as opts asks.
func (f *Fake) Encode(text string, opts tokenizer.EncodeOptions) []int32 {
	ids := f.encode(text)
	if opts.AddBOS {
		ids = append([]int32{BOS}, ids...)
	}
	if opts.AddEOS {
		ids = append(ids, EOS)
	}
	return ids
}

func (f *Fake) encode(text string) []int32 {
	if f.DummyPrefix && text != "" {
		text = " " + text
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[string]int32{}
	}
	var ids []int32
	for _, p := range Pieces(text) {
		id, ok := f.ids[p]
		if !ok {
			id = int32(len(f.pieces))
			f.ids[p] = id
			f.pieces = append(f.pieces, p)
		}
		ids = append(ids, id)
	}
	return ids
}

// TokenText returns a token's text.
func (f *Fake) TokenText(id int32) string {
	switch id {
	case BOS:
		return "<s>"
	case EOS:
		return "</s>"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id < 0 || int(id) >= len(f.pieces) {
		return ""
	}
	return f.pieces[id]
}

// Decode joins token texts, dropping BOS and EOS and the dummy prefix.
func (f *Fake) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if id == BOS || id == EOS {
			continue
		}
		b.WriteString(f.TokenText(id))
	}
	s := b.String()
	if f.DummyPrefix {
		s = strings.TrimPrefix(s, " ")
	}
	return s
}

// BOS returns the BOS id.
func (f *Fake) BOS() int32 { return BOS }

// EOS returns the EOS id.
func (f *Fake) EOS() int32 { return EOS }

// AddBOS reports whether sequences start with BOS.
func (f *Fake) AddBOS() bool { return !f.NoBOS }
