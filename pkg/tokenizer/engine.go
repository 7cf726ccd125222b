package tokenizer

import "strings"

// byteNames holds "<0xNN>" for every byte.
var byteNames [256]string

func init() {
	const hex = "0123456789ABCDEF"
	for b := range byteNames {
		byteNames[b] = "<0x" + string(hex[b>>4]) + string(hex[b&15]) + ">"
	}
}

// symbol is a span of the text being merged, linked to its neighbours.
type symbol struct {
	prev, next int
	start, n   int
}

// bigram is a candidate merge of symbols left and right.
type bigram struct {
	left, right int32
	score       float32 // SPM: higher merges first
	rank        int32   // BPE: lower merges first
	ln, rn      int32   // symbol lengths when queued (staleness check)
}

// spmBefore is llm_bigram_spm::comparator: highest score, then leftmost.
func spmBefore(a, b *bigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// bpeBefore is llm_bigram_bpe::comparator: lowest rank, then leftmost.
func bpeBefore(a, b *bigram) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

// bigramHeap is a binary heap ordered by spmBefore or bpeBefore; the two
// orders are spelled out (not a func field) so the comparisons inline.
type bigramHeap struct {
	items []bigram
	bpe   bool
}

func (h *bigramHeap) before(i, j int) bool {
	if h.bpe {
		return bpeBefore(&h.items[i], &h.items[j])
	}
	return spmBefore(&h.items[i], &h.items[j])
}

func (h *bigramHeap) push(b bigram) {
	h.items = append(h.items, b)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.before(i, p) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *bigramHeap) pop() bigram {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.before(l, m) {
			m = l
		}
		if r < last && h.before(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}

// splitSymbols cuts text into UTF-8 characters the way llama.cpp does (by
// lead byte, clamped to the text).
func splitSymbols(text string, syms []symbol) []symbol {
	for off := 0; off < len(text); {
		n := utf8Len(text[off])
		if n > len(text)-off {
			n = len(text) - off
		}
		i := len(syms)
		next := i + 1
		if off+n == len(text) {
			next = -1
		}
		syms = append(syms, symbol{prev: i - 1, next: next, start: off, n: n})
		off += n
	}
	return syms
}

// spmCuttable reports whether no token holds a "▁" that follows something
// other than "▁" (true of LLaMA's vocabulary). Then no merge can cross the
// start of a "▁" run, and the text can be tokenized word by word with the
// same result as in one piece, which is much faster on long texts.
func spmCuttable(tokens []string) bool {
	for _, s := range tokens {
		for k := 1; k < len(s); k++ {
			if strings.HasPrefix(s[k:], "▁") && !strings.HasSuffix(s[:k], "▁") {
				return false
			}
		}
	}
	return true
}

// spm tokenizes one escaped fragment with llama.cpp's SentencePiece-style
// algorithm: repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring token; text that forms no token falls back to byte tokens.
func (t *Tokenizer) spm(text string, out []int32) []int32 {
	if !t.spmCut || len(text) < 256 {
		return t.spmRun(text, out)
	}
	// Cut where a "▁" starts a symbol (as llama.cpp splits the text into
	// symbols by lead bytes) after something that does not end in "▁".
	cache := make(map[string][]int32)
	start := 0
	flush := func(end int) {
		w := text[start:end]
		if ids, ok := cache[w]; ok {
			out = append(out, ids...)
		} else {
			n := len(out)
			out = t.spmRun(w, out)
			if len(cache) < 1<<16 {
				cache[w] = out[n:len(out):len(out)]
			}
		}
		start = end
	}
	for off := 0; off < len(text); {
		if off > start && strings.HasPrefix(text[off:], "▁") && !strings.HasSuffix(text[start:off], "▁") {
			flush(off)
		}
		off += utf8Len(text[off])
	}
	if start < len(text) {
		flush(len(text))
	}
	return out
}

// spmRun is the SentencePiece-style merge loop over one piece of text.
func (t *Tokenizer) spmRun(text string, out []int32) []int32 {
	syms := splitSymbols(text, make([]symbol, 0, len(text)))
	h := bigramHeap{items: make([]bigram, 0, len(syms))}
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l], syms[r]
		id, ok := t.ids[text[a.start:b.start+b.n]]
		if !ok {
			return
		}
		h.push(bigram{left: int32(l), right: int32(r), score: t.scores[id], ln: int32(a.n + b.n)})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(h.items) > 0 {
		bg := h.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || int32(l.n+r.n) != bg.ln {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = int(bg.left)
		}
		try(l.prev, int(bg.left))
		try(int(bg.left), l.next)
	}
	if len(syms) == 0 {
		return out
	}
	for i := 0; i != -1; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		// llama.cpp's resegment would consult its rev_merge table here,
		// but every entry there is a token, so only the byte fallback
		// can be reached.
		for j := 0; j < len(piece); j++ {
			out = append(out, t.byteToken(piece[j]))
		}
	}
	return out
}

// byteToken finds the token for one raw byte in a SentencePiece vocabulary:
// "<0xNN>", else the byte itself, else UNK.
func (t *Tokenizer) byteToken(b byte) int32 {
	if id, ok := t.ids[byteNames[b]]; ok {
		return id
	}
	if id, ok := t.ids[string([]byte{b})]; ok {
		return id
	}
	return t.unk
}

// bpe tokenizes one pre-tokenized word by ranked merges
// (llm_tokenizer_bpe_session::tokenize).
func (t *Tokenizer) bpe(word string, out []int32) []int32 {
	if word == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.ids[word]; ok {
			return append(out, id)
		}
	}
	syms := splitSymbols(word, make([]symbol, 0, len(word)))
	h := bigramHeap{items: make([]bigram, 0, len(syms)), bpe: true}
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l], syms[r]
		rank, ok := t.ranks[pair{word[a.start : a.start+a.n], word[b.start : b.start+b.n]}]
		if !ok {
			return
		}
		h.push(bigram{left: int32(l), right: int32(r), rank: int32(rank), ln: int32(a.n), rn: int32(b.n)})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(h.items) > 0 {
		bg := h.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || int32(l.n) != bg.ln || int32(r.n) != bg.rn {
			continue // outdated
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = int(bg.left)
		}
		try(l.prev, int(bg.left))
		try(int(bg.left), l.next)
	}
	unkRun := false
	for i := 0; i != -1; i = syms[i].next {
		s := syms[i]
		piece := word[s.start : s.start+s.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			unkRun = false
			continue
		}
		if t.hf != nil {
			out, unkRun = t.hf.unknown(t, piece, out, unkRun)
			continue
		}
		for j := 0; j < len(piece); j++ {
			var id int32
			var ok bool
			if t.byteLevel {
				id, ok = t.ids[string([]byte{piece[j]})]
			} else {
				id, ok = t.ids[byteNames[piece[j]]]
			}
			if ok {
				out = append(out, id)
			}
		}
	}
	return out
}
