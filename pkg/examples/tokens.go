package examples

import (
	"strings"

	"github.com/lora-dev/lora/pkg/tokenizer"
)

// Tokenizer is what the data stages need from a tokenizer; lora's
// *tokenizer.Tokenizer is one. The stages call Encode with zero options
// (no BOS or EOS, control-token text such as "<s>" is plain text) and add
// BOS and EOS themselves. TokenText is a token's text as the bytes it
// decodes to. BOS and EOS return a negative id when the vocabulary has none.
type Tokenizer interface {
	Encode(text string, opts tokenizer.EncodeOptions) []int32
	TokenText(id int32) string
	Decode(ids []int32) string
	BOS() int32
	EOS() int32
	AddBOS() bool
}

// Controls is implemented by tokenizers that can say which tokens are
// control tokens (*tokenizer.Tokenizer does); the format stage then
// recognises their text in templates.
type Controls interface {
	VocabSize() int
	IsControl(id int32) bool
	Token(id int32) string
}

// ControlTokens maps the text of every control token of tok to its id (nil
// when tok is not Controls).
func ControlTokens(tok Tokenizer) map[string]int32 {
	c, ok := tok.(Controls)
	if !ok {
		return nil
	}
	m := map[string]int32{}
	for id := int32(0); int(id) < c.VocabSize(); id++ {
		if c.IsControl(id) {
			if s := c.Token(id); s != "" {
				m[s] = id
			}
		}
	}
	return m
}

// Tokens is one tokenization of a text with, for each token, the byte offset
// in the text where it ends. Token k spans [End(k-1), End(k)): the tokens
// partition the text, so every byte belongs to exactly one token.
type Tokens struct {
	IDs  []int32
	Ends []int
}

// Start returns the byte offset where token k starts.
func (t Tokens) Start(k int) int {
	if k == 0 {
		return 0
	}
	return t.Ends[k-1]
}

// Encode tokenizes text once and maps every token to its bytes in text.
//
// The map comes from the tokens' own texts laid end to end along text, not
// from decoding and re-encoding. A leading space the tokenizer adds (the
// SentencePiece dummy prefix) belongs to the first token and covers no text.
// Where a token's text is not found at its place (an unknown-token piece, or
// a normalizing tokenizer), the tokens up to the next one that is found share
// the gap: the partition stays exact and monotone, only the split inside the
// gap is approximate.
func Encode(tok Tokenizer, text string) Tokens {
	ids := tok.Encode(text, tokenizer.EncodeOptions{})
	return Tokens{IDs: ids, Ends: align(text, ids, tok.TokenText)}
}

func align(text string, ids []int32, piece func(int32) string) []int {
	// The usual case: the pieces laid end to end are the text, or the text
	// after the tokenizer's dummy-prefix space.
	if ends, ok := exact(text, ids, piece); ok {
		return ends
	}
	return resync(text, ids, piece)
}

// exact maps tokens to bytes when the pieces concatenate to text, or to
// " "+text with the space in the first piece (a SentencePiece dummy prefix).
func exact(text string, ids []int32, piece func(int32) string) ([]int, bool) {
	if len(ids) == 0 {
		return nil, true
	}
	total := 0
	for _, id := range ids {
		total += len(piece(id))
	}
	shift := 0
	switch {
	case total == len(text):
	case total == len(text)+1 && strings.HasPrefix(piece(ids[0]), " "):
		shift = 1
	default:
		return nil, false
	}
	ends := make([]int, len(ids))
	pos := -shift
	for k, id := range ids {
		p := piece(id)
		if k == 0 && shift == 1 {
			p = p[1:]
			pos = 0
		}
		if !strings.HasPrefix(text[pos:], p) {
			return nil, false
		}
		pos += len(p)
		ends[k] = pos
	}
	return ends, pos == len(text)
}

// resync aligns pieces that do not lay out the text exactly: each piece
// found at its place advances; a piece not found (an unknown token, a
// normalized character) makes the tokens up to the next piece found further
// on share the gap.
func resync(text string, ids []int32, piece func(int32) string) []int {
	ends := make([]int, len(ids))
	pos := 0
	for k := 0; k < len(ids); k++ {
		p := piece(ids[k])
		if n, ok := matchAt(text, pos, p, k == 0); ok {
			pos += n
			ends[k] = pos
			continue
		}
		// Resynchronise on the next token whose text is found further on.
		next, at := -1, len(text)
		for j := k + 1; j < len(ids) && j < k+64; j++ {
			q := piece(ids[j])
			if q == "" {
				continue
			}
			if i := strings.Index(text[pos:], q); i >= 0 {
				next, at = j, pos+i
				break
			}
			if q[0] == ' ' {
				if i := strings.Index(text[pos:], q[1:]); i >= 0 && len(q) > 1 {
					next, at = j, pos+i
					break
				}
			}
		}
		if next < 0 {
			next = len(ids)
		}
		for j := k; j < next; j++ {
			ends[j] = at
		}
		pos = at
		k = next - 1
	}
	if len(ends) > 0 {
		ends[len(ends)-1] = len(text)
	}
	return ends
}

// matchAt reports whether piece p lies at text[pos:], and how many text
// bytes it covers. The first token's leading space may be the tokenizer's own
// (the SentencePiece dummy prefix) and then covers no text.
func matchAt(text string, pos int, p string, first bool) (int, bool) {
	if strings.HasPrefix(text[pos:], p) {
		return len(p), true
	}
	if first && len(p) > 0 && p[0] == ' ' && strings.HasPrefix(text[pos:], p[1:]) {
		return len(p) - 1, true
	}
	return 0, false
}

// Labels returns labels for ids when the positions before from are not
// trained: a copy of ids with Ignore at [0, from).
func Labels(ids []int32, from int) []int32 {
	l := make([]int32, len(ids))
	for i, id := range ids {
		if i < from {
			l[i] = Ignore
		} else {
			l[i] = id
		}
	}
	return l
}

// FromTokenizer returns t as the data stages' Tokenizer. (It is one
// already; this remains for callers written against an adapter.)
func FromTokenizer(t *tokenizer.Tokenizer) Tokenizer { return t }
