// Package tokenizer turns text into LLaMA-family token ids and back, as llama.cpp does.
package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Token types as GGUF stores them in tokenizer.ggml.token_type.
const (
	TypeUndefined   int32 = 0
	TypeNormal      int32 = 1
	TypeUnknown     int32 = 2
	TypeControl     int32 = 3
	TypeUserDefined int32 = 4
	TypeUnused      int32 = 5
	TypeByte        int32 = 6
)

// Model names, as in tokenizer.ggml.model.
const (
	ModelLlama = "llama" // SentencePiece-style: score-ordered merges, byte fallback
	ModelGPT2  = "gpt2"  // byte-level BPE with ranked merges and a pre-tokenizer
)

// NoToken marks an absent special token.
const NoToken int32 = -1

// Vocab is everything a tokenizer is built from; FromGGUF fills it from GGUF
// metadata with llama.cpp's defaults, tests fill it by hand.
type Vocab struct {
	Model  string    // ModelLlama or ModelGPT2
	Pre    string    // pre-tokenizer name (tokenizer.ggml.pre), gpt2 only
	Tokens []string  // token texts, by id
	Scores []float32 // merge priority for llama (higher first); optional
	Types  []int32   // Type* per token; optional (all normal)
	Merges []string  // "left right" in rank order, gpt2 only

	BOS, EOS, UNK, PAD int32 // NoToken when absent
	AddBOS, AddEOS     bool  // whether Encode callers should add them by default

	// AddSpacePrefix prepends the SentencePiece dummy space (llama models;
	// tokenizer.ggml.add_space_prefix, default true).
	AddSpacePrefix bool

	// EOG lists end-of-generation tokens besides EOS (end of turn, end of
	// message); tokens with well-known end texts are added automatically.
	EOG []int32

	// Name is the model name (general.name); llama.cpp sets some token
	// attributes by it (Phi-3's special tokens swallow the spaces after
	// them).
	Name string
}

// EncodeOptions controls Encode.
type EncodeOptions struct {
	AddBOS, AddEOS bool // add the BOS/EOS token (when the vocabulary has one)
	// ParseSpecial lets control tokens written in the text (like "<s>")
	// become those tokens; otherwise they are tokenized as plain text.
	// User-defined tokens are always matched whole, as llama.cpp does.
	ParseSpecial bool
}

// DecodeOptions controls DecodeWith.
type DecodeOptions struct {
	Special bool // render control and unknown tokens as their text
	// KeepSpacePrefix keeps the dummy space a SentencePiece-style Encode
	// puts before the text; by default it is removed once, from the first
	// token that is not a control token. (Decoding a slice from the middle
	// of a sequence wants KeepSpacePrefix, or TokenText per token.)
	KeepSpacePrefix bool
	// CleanSpaces applies llama.cpp's clean_up_tokenization_spaces to
	// vocabularies that ask for it (gpt2-style ones): " ," → ",", " 's" → "'s".
	CleanSpaces bool
}

type attr uint16

const (
	attrUndefined attr = 0
	attrUnknown   attr = 1 << 0
	attrUnused    attr = 1 << 1
	attrNormal    attr = 1 << 2
	attrControl   attr = 1 << 3
	attrUser      attr = 1 << 4
	attrByte      attr = 1 << 5
	attrLStrip    attr = 1 << 7
	attrRStrip    attr = 1 << 8
)

func attrOfType(t int32) attr {
	switch t {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUser
	case TypeByte:
		return attrByte
	}
	return attrUndefined
}

type pair struct{ a, b string }

type engine int

const (
	engineSPM engine = iota
	engineBPE
)

// Tokenizer encodes and decodes text. It is safe for concurrent use.
type Tokenizer struct {
	model  string
	pre    string
	engine engine
	tokens []string
	scores []float32
	attrs  []attr
	ids    map[string]int32
	ranks  map[pair]int

	splitters    []splitter
	byteLevel    bool // words are GPT-2 byte-encoded before BPE
	escapeSpaces bool // spaces become U+2581 before BPE
	ignoreMerges bool
	cleanSpaces  bool

	addSpacePrefix bool
	spmCut         bool // SPM text may be cut into words (see spmCuttable)
	bos, eos, unk  int32
	pad            int32
	addBOS, addEOS bool

	special []int32 // control/user/unknown tokens, longest first
	eog     map[int32]bool
	pieces  []string // TokenText cache

	hf *hfPipeline // set for tokenizers loaded from tokenizer.json
}

// Limits on a vocabulary, against hostile files.
const (
	maxTokens   = 1 << 24
	maxTokenLen = 1 << 16
)

// New builds a tokenizer from v.
func New(v Vocab) (*Tokenizer, error) {
	t := &Tokenizer{
		model:          v.Model,
		pre:            v.Pre,
		bos:            v.BOS,
		eos:            v.EOS,
		unk:            v.UNK,
		pad:            v.PAD,
		addBOS:         v.AddBOS,
		addEOS:         v.AddEOS,
		addSpacePrefix: v.AddSpacePrefix,
		eog:            map[int32]bool{},
	}
	for _, id := range v.EOG {
		t.eog[id] = true
	}
	switch v.Model {
	case ModelLlama:
		t.engine = engineSPM
	case ModelGPT2:
		t.engine = engineBPE
		cfg, err := lookupPre(v.Pre)
		if err != nil {
			return nil, err
		}
		if t.splitters, err = compileSplitters(cfg.exprs, modeLlama); err != nil {
			return nil, err
		}
		t.byteLevel = !cfg.rawBytes
		t.escapeSpaces = cfg.escapeSpaces
		t.ignoreMerges = cfg.ignoreMerges
		t.cleanSpaces = !cfg.keepSpaces
		t.addSpacePrefix = false
		if err := t.setMerges(v.Merges); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported tokenizer model %q (tokenizer.ggml.model): want %q or %q", v.Model, ModelLlama, ModelGPT2)
	}
	if err := t.setTokens(v.Tokens, v.Scores, v.Types); err != nil {
		return nil, err
	}
	t.spmCut = t.engine == engineSPM && spmCuttable(t.tokens)
	t.promoteControls()
	t.nameAttrs(v.Name)
	if err := t.finish(); err != nil {
		return nil, err
	}
	return t, nil
}

// promoteControls applies llama.cpp's load-time fixes: end-of-turn and
// fill-in-the-middle markers become control tokens even when the file calls
// them normal, and gpt-oss's channel markers become user-defined.
func (t *Tokenizer) promoteControls() {
	for i, s := range t.tokens {
		if eogTexts[s] {
			t.attrs[i] |= attrControl
		}
		switch s {
		case "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>":
			t.attrs[i] = attrUser
		}
	}
}

// nameAttrs sets the strip attributes llama.cpp derives from the model
// name and the pre-tokenizer name.
func (t *Tokenizer) nameAttrs(name string) {
	name = strings.ToLower(name)
	set := func(text string, a attr, on bool) {
		if id, ok := t.ids[text]; ok {
			if on {
				t.attrs[id] |= a
			} else {
				t.attrs[id] &^= a
			}
		}
	}
	switch {
	case strings.Contains(t.pre, "jina-v2-de") || strings.Contains(t.pre, "jina-v2-es") || strings.Contains(t.pre, "jina-v2-code"):
		set("<mask>", attrLStrip, true)
	case strings.Contains(name, "phi-3") || strings.Contains(name, "phi3"):
		for i, a := range t.attrs {
			if a&(attrControl|attrUser|attrUnknown) != 0 {
				t.attrs[i] |= attrRStrip
			}
		}
		set("</s>", attrRStrip, true)
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			set(s, attrRStrip, false)
		}
	case strings.Contains(name, "modern-bert"):
		set("[MASK]", attrLStrip, true)
	}
}

func (t *Tokenizer) setMerges(merges []string) error {
	t.ranks = make(map[pair]int, len(merges))
	for i, m := range merges {
		// llama.cpp splits at the first space after the first byte, so a
		// merge may start with a space.
		var a, b string
		if len(m) > 1 {
			if k := strings.IndexByte(m[1:], ' '); k >= 0 {
				a, b = m[:k+1], m[k+2:]
			}
		}
		p := pair{a, b}
		if _, dup := t.ranks[p]; !dup {
			t.ranks[p] = i
		}
	}
	return nil
}

func (t *Tokenizer) setTokens(tokens []string, scores []float32, types []int32) error {
	n := len(tokens)
	if n == 0 {
		return errors.New("vocabulary has no tokens")
	}
	if n > maxTokens {
		return fmt.Errorf("vocabulary has %d tokens, more than the %d this reader accepts", n, maxTokens)
	}
	if scores != nil && len(scores) < n {
		return fmt.Errorf("vocabulary has %d tokens but %d scores", n, len(scores))
	}
	if types != nil && len(types) < n {
		return fmt.Errorf("vocabulary has %d tokens but %d token types", n, len(types))
	}
	t.tokens = make([]string, n)
	t.scores = make([]float32, n)
	t.attrs = make([]attr, n)
	t.ids = make(map[string]int32, n)
	for i, s := range tokens {
		if len(s) > maxTokenLen {
			return fmt.Errorf("token %d is %d bytes long, more than %d", i, len(s), maxTokenLen)
		}
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := t.ids[s]; dup {
			return fmt.Errorf("duplicate token in vocabulary: %q has ids %d and %d", s, j, i)
		}
		t.ids[s] = int32(i)
		t.tokens[i] = s
		if scores != nil {
			t.scores[i] = scores[i]
		}
		t.attrs[i] = attrNormal
		if types != nil {
			t.attrs[i] = attrOfType(types[i])
		}
	}
	return nil
}

// eogTexts are the texts llama.cpp promotes to control tokens even when the
// file calls them normal.
var eogTexts = map[string]bool{
	"<|eot_id|>": true, "<|im_end|>": true, "<|end|>": true, "<end_of_turn>": true,
	"<|endoftext|>": true, "<|end_of_text|>": true, "<EOT>": true, "_<EOT>": true,
	"<|eom_id|>": true, "<｜end▁of▁sentence｜>": true, "<end_of_utterance>": true,
	"<|fim_prefix|>": true, "<fim-prefix>": true, "<fim_prefix>": true, "<｜fim▁begin｜>": true,
	"<PRE>": true, "▁<PRE>": true, "<|fim_suffix|>": true, "<fim-suffix>": true,
	"<fim_suffix>": true, "<｜fim▁hole｜>": true, "<SUF>": true, "▁<SUF>": true,
	"<|fim_middle|>": true, "<fim-middle>": true, "<fim_middle>": true, "<｜fim▁end｜>": true,
	"<MID>": true, "▁<MID>": true, "<|fim_pad|>": true, "<fim-pad>": true, "<fim_pad>": true,
	"<PAD>": true, "<|fim_repo|>": true, "<|repo_name|>": true, "<fim-repo>": true,
	"<REPO>": true, "<reponame>": true, "<|file_sep|>": true,
}

// eogEndTexts are the texts llama.cpp treats as end of generation.
var eogEndTexts = map[string]bool{
	"<|eot_id|>": true, "<|im_end|>": true, "<|end|>": true, "<|return|>": true, "<|call|>": true,
	"<end_of_turn>": true, "<|endoftext|>": true, "<|eom_id|>": true, "<EOT>": true, "_<EOT>": true,
	"<|end_of_text|>": true, "<end_of_utterance>": true, "<｜end▁of▁sentence｜>": true,
}

// finish validates the special ids and builds the caches.
func (t *Tokenizer) finish() error {
	n := int32(len(t.tokens))
	for _, p := range []*int32{&t.bos, &t.eos, &t.unk, &t.pad} {
		if *p < 0 || *p >= n {
			*p = NoToken
		}
	}
	if t.addBOS && t.bos == NoToken {
		return errors.New("add_bos_token is true, but the vocabulary has no BOS token (tokenizer.ggml.bos_token_id)")
	}
	if t.addEOS && t.eos == NoToken {
		return errors.New("add_eos_token is true, but the vocabulary has no EOS token (tokenizer.ggml.eos_token_id)")
	}
	if t.eog == nil {
		t.eog = map[int32]bool{}
	}
	for i, s := range t.tokens {
		if eogEndTexts[s] {
			t.eog[int32(i)] = true
		}
	}
	if t.eos != NoToken {
		t.eog[t.eos] = true
	}
	for id := range t.eog {
		if id < 0 || id >= n {
			delete(t.eog, id)
		}
	}
	t.special = t.special[:0]
	for i, a := range t.attrs {
		if a&(attrControl|attrUser|attrUnknown) != 0 {
			t.special = append(t.special, int32(i))
		}
	}
	sort.SliceStable(t.special, func(i, j int) bool {
		return len(t.tokens[t.special[i]]) > len(t.tokens[t.special[j]])
	})
	t.pieces = make([]string, len(t.tokens))
	for i := range t.tokens {
		t.pieces[i] = t.piece(int32(i))
	}
	return nil
}

// piece renders one token as bytes, special tokens as their text.
func (t *Tokenizer) piece(id int32) string {
	text := t.tokens[id]
	a := t.attrs[id]
	switch {
	case a&(attrUnknown|attrControl|attrUser) != 0:
		return text
	case a&attrNormal != 0:
		if t.engine == engineSPM || t.escapeSpaces || (t.hf != nil && !t.byteLevel) {
			return strings.ReplaceAll(text, "▁", " ")
		}
		return string(byteDecode(nil, text))
	case a&attrByte != 0:
		if b, ok := parseByteToken(text); ok {
			return string([]byte{b})
		}
		return text
	}
	return ""
}

// parseByteToken reads "<0xNN>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexVal(s[3])
	lo, ok2 := hexVal(s[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// BOS returns the beginning-of-sequence id, or NoToken.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence id, or NoToken.
func (t *Tokenizer) EOS() int32 { return t.eos }

// UNK returns the unknown-token id, or NoToken.
func (t *Tokenizer) UNK() int32 { return t.unk }

// PAD returns the padding id, or NoToken.
func (t *Tokenizer) PAD() int32 { return t.pad }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// AddBOS reports whether the model wants BOS added by default.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether the model wants EOS added by default.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// Model is the tokenizer model name: "llama" or "gpt2" from GGUF, "hf-bpe"
// for a tokenizer.json.
func (t *Tokenizer) Model() string { return t.model }

// Pre is the pre-tokenizer name, empty for llama models.
func (t *Tokenizer) Pre() string { return t.pre }

// Token returns the raw vocabulary text of id ("" when out of range).
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// ID returns the id of a raw vocabulary text.
func (t *Tokenizer) ID(text string) (int32, bool) {
	id, ok := t.ids[text]
	return id, ok
}

// IsEOG reports whether generation should stop at id: EOS, end-of-turn
// and similar tokens.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// IsControl reports whether id is a control token (BOS, EOS, chat markers).
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&attrControl != 0
}

// TokenText renders one token as decoded text: the bytes it stands for, or
// its text for special tokens. Out-of-range ids give "".
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Encode tokenizes text.
func (t *Tokenizer) Encode(text string, opts EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/3+2)
	if opts.AddBOS && t.bos != NoToken {
		out = append(out, t.bos)
	}
	var frags []fragment
	if text != "" {
		frags = t.partition(text, opts.ParseSpecial)
	}
	prevSpecial := true
	for i, f := range frags {
		if f.tok != NoToken {
			out = append(out, f.tok)
			prevSpecial = true
			continue
		}
		switch {
		case t.hf != nil:
			out = t.hf.encode(t, f.text, i == 0, out)
		case t.engine == engineSPM:
			s := f.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.spm(escapeSpaces(s), out)
		default:
			s := f.text
			if t.escapeSpaces {
				s = escapeSpaces(s)
			}
			words := splitWords(s, t.splitters)
			// Long texts repeat their words: remember each word's ids
			// for this call (the result depends on the word alone).
			var cache map[string][]int32
			if len(words) > 64 {
				cache = make(map[string][]int32)
			}
			var buf []byte
			for _, w := range words {
				if ids, ok := cache[w]; ok {
					out = append(out, ids...)
					continue
				}
				key := w
				if t.byteLevel {
					buf = byteEncode(buf[:0], w)
					w = string(buf)
				}
				n := len(out)
				out = t.bpe(w, out)
				if cache != nil && len(cache) < 1<<16 {
					cache[key] = out[n:len(out):len(out)]
				}
			}
		}
		prevSpecial = false
	}
	if opts.AddEOS && t.eos != NoToken {
		out = append(out, t.eos)
	}
	return out
}

// escapeSpaces is llama_escape_whitespace: spaces become U+2581.
func escapeSpaces(s string) string { return strings.ReplaceAll(s, " ", "▁") }

type fragment struct {
	text string
	tok  int32 // NoToken for text
}

func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// partition splits text around special tokens, longest first, as
// llama.cpp's tokenizer_st_partition does.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	frags := []fragment{{text: text, tok: NoToken}}
	for _, id := range t.special {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		st := t.tokens[id]
		if st == "" {
			continue
		}
		var next []fragment
		changed := false
		for _, f := range frags {
			if f.tok != NoToken || !strings.Contains(f.text, st) {
				next = append(next, f)
				continue
			}
			changed = true
			s := f.text
			for {
				i := strings.Index(s, st)
				if i < 0 {
					if s != "" {
						next = append(next, fragment{text: s, tok: NoToken})
					}
					break
				}
				left := s[:i]
				if a&attrLStrip != 0 {
					for len(left) > 0 && isCSpace(left[len(left)-1]) {
						left = left[:len(left)-1]
					}
				}
				if left != "" {
					next = append(next, fragment{text: left, tok: NoToken})
				}
				next = append(next, fragment{tok: id})
				s = s[i+len(st):]
				if a&attrRStrip != 0 {
					for len(s) > 0 && isCSpace(s[0]) {
						s = s[1:]
					}
				}
			}
		}
		if changed {
			frags = next
		}
	}
	return frags
}

// Decode turns ids back into text: special tokens are left out and the
// SentencePiece dummy space is removed. Out-of-range ids are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	return t.DecodeWith(ids, DecodeOptions{})
}

// DecodeWith turns ids back into text as opts says.
func (t *Tokenizer) DecodeWith(ids []int32, opts DecodeOptions) string {
	var b strings.Builder
	strip := t.stripsPrefix() && !opts.KeepSpacePrefix
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) {
			continue
		}
		if t.attrs[id]&(attrControl|attrUnknown) != 0 && !opts.Special {
			continue
		}
		p := t.pieces[id]
		if strip && t.attrs[id]&(attrControl|attrUnknown) == 0 {
			p = strings.TrimPrefix(p, " ")
			strip = false
		}
		b.WriteString(p)
	}
	if opts.CleanSpaces && t.cleanSpaces {
		return cleanSpaces(b.String())
	}
	return b.String()
}

func (t *Tokenizer) stripsPrefix() bool {
	if t.hf != nil {
		return t.hf.stripPrefix
	}
	return t.addSpacePrefix
}

// cleanSpaces is llama.cpp's three-pass clean_up_tokenization_spaces.
func cleanSpaces(s string) string {
	b := []byte(s)
	if len(b) == 0 {
		return s
	}
	// pass 1: " ?", " !", " .", " ," lose the space
	n := 1
	for i := 1; i < len(b); i++ {
		x := b[i]
		if b[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			n--
		}
		b[n] = x
		n++
	}
	b = b[:n]
	// pass 2: a lone apostrophe between spaces loses both spaces
	n = 1
	for i := 1; i < len(b); i++ {
		x := b[i]
		if x == '\'' && i+1 < len(b) && b[i-1] == ' ' && b[i+1] == ' ' {
			n--
			b[n] = x
			n++
			i++ // the space after is dropped too
			continue
		}
		b[n] = x
		n++
	}
	b = b[:n]
	// pass 3: " 's", " 'm", " 're", " 've" lose the space
	n = 1
	for i := 1; i < len(b); i++ {
		x := b[i]
		if b[i-1] == ' ' && x == '\'' && i+1 < len(b) {
			x1 := b[i+1]
			if x1 == 's' || x1 == 'm' {
				n--
			} else if x1 != 't' && x1 != 'd' && i+2 < len(b) {
				x2 := b[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					n--
				}
			}
		}
		b[n] = x
		n++
	}
	return string(b[:n])
}
