package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// maxJSONBytes caps tokenizer.json and tokenizer_config.json reads.
const maxJSONBytes = 256 << 20

// hfPipeline is the Hugging Face tokenizers pipeline for one fragment of
// text between special tokens: normalizers, pre-tokenizers, then the BPE
// model.
type hfPipeline struct {
	normalize    []func(s string) string
	pre          []hfPre
	byteFallback bool
	fuseUnk      bool
	stripPrefix  bool // the decoder strips one leading space
}

// hfPre maps the pieces so far to new pieces; first is true for the text at
// the very start of the input.
type hfPre func(pieces []string, first bool) []string

func (p *hfPipeline) encode(t *Tokenizer, text string, first bool, out []int32) []int32 {
	for _, f := range p.normalize {
		text = f(text)
	}
	pieces := []string{text}
	for _, f := range p.pre {
		pieces = f(pieces, first)
	}
	for _, w := range pieces {
		out = t.bpe(w, out)
	}
	return out
}

// unknown handles a piece that is not a token: byte fallback, else UNK
// (fused into one when fuse_unk is set), else nothing.
func (p *hfPipeline) unknown(t *Tokenizer, piece string, out []int32, unkRun bool) ([]int32, bool) {
	if p.byteFallback {
		ids := make([]int32, 0, len(piece))
		for i := 0; i < len(piece); i++ {
			id, ok := t.ids[byteNames[piece[i]]]
			if !ok {
				ids = nil
				break
			}
			ids = append(ids, id)
		}
		if ids != nil {
			return append(out, ids...), false
		}
	}
	if t.unk == NoToken {
		return out, unkRun
	}
	if p.fuseUnk && unkRun {
		return out, true
	}
	return append(out, t.unk), true
}

// hfFile is the part of tokenizer.json this package reads.
type hfFile struct {
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
		LStrip  bool   `json:"lstrip"`
		RStrip  bool   `json:"rstrip"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type         string           `json:"type"`
		Vocab        map[string]int32 `json:"vocab"`
		Merges       json.RawMessage  `json:"merges"`
		UnkToken     *string          `json:"unk_token"`
		ByteFallback bool             `json:"byte_fallback"`
		FuseUnk      bool             `json:"fuse_unk"`
		IgnoreMerges bool             `json:"ignore_merges"`
		Prefix       *string          `json:"continuing_subword_prefix"`
		Suffix       *string          `json:"end_of_word_suffix"`
	} `json:"model"`
}

// hfNode is any normalizer, pre-tokenizer, decoder or post-processor.
type hfNode struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Processors    []json.RawMessage `json:"processors"`
	Prepend       string            `json:"prepend"`
	Pattern       struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content          string `json:"content"`
	Behavior         string `json:"behavior"`
	Invert           bool   `json:"invert"`
	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	UseRegex         *bool  `json:"use_regex"`
	Replacement      string `json:"replacement"`
	PrependScheme    string `json:"prepend_scheme"`
	Split            *bool  `json:"split"`
	IndividualDigits bool   `json:"individual_digits"`
	StripLeft        bool   `json:"strip_left"`
	StripRight       bool   `json:"strip_right"`
	Start            int    `json:"start"`
	Single           []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
}

// hfConfig is the part of tokenizer_config.json this package reads.
type hfConfig struct {
	AddBOS *bool           `json:"add_bos_token"`
	AddEOS *bool           `json:"add_eos_token"`
	BOS    json.RawMessage `json:"bos_token"`
	EOS    json.RawMessage `json:"eos_token"`
	UNK    json.RawMessage `json:"unk_token"`
	PAD    json.RawMessage `json:"pad_token"`
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSONBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJSONBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxJSONBytes>>20)
	}
	return data, nil
}

// FromHF loads a Hugging Face tokenizer.json (path names the file or the
// directory holding it); tokenizer_config.json beside it, when present,
// supplies the special tokens and the add-BOS/EOS flags.
func FromHF(path string) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := readCapped(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	var cfg *hfConfig
	if c, err := readCapped(filepath.Join(filepath.Dir(path), "tokenizer_config.json")); err == nil {
		cfg = new(hfConfig)
		if err := json.Unmarshal(c, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w (fix or remove the file)", filepath.Join(filepath.Dir(path), "tokenizer_config.json"), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read tokenizer config: %w", err)
	}
	t, err := fromHFJSON(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func fromHFJSON(data []byte, cfg *hfConfig) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if f.Model.Type != "BPE" && !(f.Model.Type == "" && f.Model.Merges != nil) {
		return nil, fmt.Errorf("model type %q is not supported: only BPE tokenizers can be loaded", f.Model.Type)
	}
	if f.Model.Prefix != nil && *f.Model.Prefix != "" || f.Model.Suffix != nil && *f.Model.Suffix != "" {
		return nil, errors.New("BPE with continuing_subword_prefix or end_of_word_suffix is not supported")
	}

	// Tokens: the model vocabulary plus the added tokens, by id.
	maxID := int32(-1)
	for _, id := range f.Model.Vocab {
		maxID = max(maxID, id)
		if id < 0 {
			return nil, fmt.Errorf("model.vocab has negative id %d", id)
		}
	}
	for _, a := range f.AddedTokens {
		maxID = max(maxID, a.ID)
		if a.ID < 0 {
			return nil, fmt.Errorf("added_tokens has negative id %d", a.ID)
		}
	}
	if maxID < 0 {
		return nil, errors.New("vocabulary is empty")
	}
	if maxID >= maxTokens {
		return nil, fmt.Errorf("token id %d exceeds the limit of %d", maxID, maxTokens)
	}
	tokens := make([]string, maxID+1)
	types := make([]int32, maxID+1)
	have := make([]bool, maxID+1)
	for s, id := range f.Model.Vocab {
		tokens[id], types[id], have[id] = s, TypeNormal, true
	}
	for _, a := range f.AddedTokens {
		tokens[a.ID], have[a.ID] = a.Content, true
		types[a.ID] = TypeUserDefined
		if a.Special {
			types[a.ID] = TypeControl
		}
	}
	for i := range tokens {
		if !have[i] {
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), TypeUnused
		}
	}
	if f.Model.ByteFallback {
		for i, s := range tokens {
			if _, ok := parseByteToken(s); ok && types[i] == TypeNormal {
				types[i] = TypeByte
			}
		}
	}

	t := &Tokenizer{
		model:        "hf-bpe",
		engine:       engineBPE,
		ignoreMerges: f.Model.IgnoreMerges,
		bos:          NoToken, eos: NoToken, unk: NoToken, pad: NoToken,
	}
	p := &hfPipeline{byteFallback: f.Model.ByteFallback, fuseUnk: f.Model.FuseUnk}
	t.hf = p
	if err := t.setTokens(tokens, nil, types); err != nil {
		return nil, err
	}
	for _, a := range f.AddedTokens {
		if a.LStrip {
			t.attrs[a.ID] |= attrLStrip
		}
		if a.RStrip {
			t.attrs[a.ID] |= attrRStrip
		}
	}

	merges, err := parseMerges(f.Model.Merges)
	if err != nil {
		return nil, err
	}
	t.ranks = make(map[pair]int, len(merges))
	for i, m := range merges {
		if _, ok := t.ids[m.a+m.b]; !ok {
			continue // the tokenizers library rejects such merges; skip them
		}
		if _, dup := t.ranks[m]; !dup {
			t.ranks[m] = i
		}
	}

	if p.normalize, err = hfNormalizers(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if p.pre, err = hfPreTokenizers(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if err := hfDecoder(f.Decoder, t, p); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	if f.Model.UnkToken != nil {
		if id, ok := t.ids[*f.Model.UnkToken]; ok {
			t.unk = id
		}
	}
	if err := t.hfSpecials(f.PostProcessor, cfg); err != nil {
		return nil, err
	}
	if err := t.finish(); err != nil {
		return nil, err
	}
	return t, nil
}

func parseMerges(raw json.RawMessage) ([]pair, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([]pair, 0, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("model.merges[%d] %q has no space between its two parts", i, s)
			}
			out = append(out, pair{a, b})
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("model.merges: want strings or pairs of strings: %w", err)
	}
	out := make([]pair, 0, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("model.merges[%d] has %d parts, want 2", i, len(p))
		}
		out = append(out, pair{p[0], p[1]})
	}
	return out, nil
}

func decodeNode(raw json.RawMessage) (*hfNode, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var n hfNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

func hfNormalizers(raw json.RawMessage) ([]func(string) string, error) {
	n, err := decodeNode(raw)
	if err != nil || n == nil {
		return nil, err
	}
	switch n.Type {
	case "Sequence":
		var out []func(string) string
		for _, sub := range n.Normalizers {
			fs, err := hfNormalizers(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		}
		return out, nil
	case "Prepend":
		pre := n.Prepend
		return []func(string) string{func(s string) string {
			if s == "" {
				return s
			}
			return pre + s
		}}, nil
	case "Replace":
		content := n.Content
		if n.Pattern.String != nil {
			old := *n.Pattern.String
			return []func(string) string{func(s string) string { return strings.ReplaceAll(s, old, content) }}, nil
		}
		if n.Pattern.Regex != nil {
			re, err := compileRegex(*n.Pattern.Regex, modeUnicode)
			if err != nil {
				return nil, err
			}
			return []func(string) string{func(s string) string { return re.replaceAll(s, content) }}, nil
		}
		return nil, errors.New("Replace without a pattern")
	case "NFC":
		return []func(string) string{norm.NFC.String}, nil
	case "NFD":
		return []func(string) string{norm.NFD.String}, nil
	case "NFKC":
		return []func(string) string{norm.NFKC.String}, nil
	case "NFKD":
		return []func(string) string{norm.NFKD.String}, nil
	case "Lowercase":
		return []func(string) string{strings.ToLower}, nil
	case "Strip":
		l, r := n.StripLeft, n.StripRight
		return []func(string) string{func(s string) string {
			if l {
				s = strings.TrimLeftFunc(s, isSpaceRE)
			}
			if r {
				s = strings.TrimRightFunc(s, isSpaceRE)
			}
			return s
		}}, nil
	}
	return nil, fmt.Errorf("normalizer type %q is not supported", n.Type)
}

func hfPreTokenizers(raw json.RawMessage) ([]hfPre, error) {
	n, err := decodeNode(raw)
	if err != nil || n == nil {
		return nil, err
	}
	switch n.Type {
	case "Sequence":
		var out []hfPre
		for _, sub := range n.Pretokenizers {
			fs, err := hfPreTokenizers(sub)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		}
		return out, nil
	case "ByteLevel":
		addPrefix := n.AddPrefixSpace != nil && *n.AddPrefixSpace
		useRegex := n.UseRegex == nil || *n.UseRegex
		return []hfPre{func(pieces []string, _ bool) []string {
			var out []string
			for _, p := range pieces {
				if addPrefix && !strings.HasPrefix(p, " ") {
					p = " " + p
				}
				words := []string{p}
				if useRegex {
					words = splitWords(p, []splitter{scanner(scanGPT2)})
				}
				for _, w := range words {
					out = append(out, string(byteEncode(make([]byte, 0, 2*len(w)), w)))
				}
			}
			return out
		}}, nil
	case "Split":
		var expr string
		switch {
		case n.Pattern.Regex != nil:
			expr = *n.Pattern.Regex
		case n.Pattern.String != nil:
			expr = quoteRegex(*n.Pattern.String)
		default:
			return nil, errors.New("Split without a pattern")
		}
		var sc scanner
		if !n.Invert && (n.Behavior == "Isolated" || n.Behavior == "") {
			sc = customScanner(expr)
		}
		var re *regex
		if sc == nil {
			if re, err = compileRegex(expr, modeUnicode); err != nil {
				return nil, err
			}
		}
		behavior, invert := n.Behavior, n.Invert
		switch behavior {
		case "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous":
		default:
			return nil, fmt.Errorf("Split behavior %q is not supported", behavior)
		}
		return []hfPre{func(pieces []string, _ bool) []string {
			var out []string
			for _, p := range pieces {
				if sc != nil {
					out = append(out, splitWords(p, []splitter{sc})...)
					continue
				}
				out = append(out, splitBehavior(p, re, behavior, invert)...)
			}
			return out
		}}, nil
	case "Metaspace":
		repl := n.Replacement
		if repl == "" {
			repl = "▁"
		}
		scheme := n.PrependScheme
		if scheme == "" {
			scheme = "always"
			if n.AddPrefixSpace != nil && !*n.AddPrefixSpace {
				scheme = "never"
			}
		}
		split := n.Split == nil || *n.Split
		return []hfPre{func(pieces []string, first bool) []string {
			var out []string
			for i, p := range pieces {
				p = strings.ReplaceAll(p, " ", repl)
				if (scheme == "always" || scheme == "first" && first && i == 0) && !strings.HasPrefix(p, repl) {
					p = repl + p
				}
				if !split {
					out = append(out, p)
					continue
				}
				for p != "" {
					k := strings.Index(p[1:], repl)
					if k < 0 {
						out = append(out, p)
						break
					}
					out = append(out, p[:k+1])
					p = p[k+1:]
				}
			}
			return out
		}}, nil
	case "Digits":
		expr := `\p{Nd}+`
		if n.IndividualDigits {
			expr = `\p{Nd}`
		}
		re, err := compileRegex(expr, modeUnicode)
		if err != nil {
			return nil, err
		}
		return []hfPre{func(pieces []string, _ bool) []string {
			var out []string
			for _, p := range pieces {
				out = append(out, splitBehavior(p, re, "Isolated", false)...)
			}
			return out
		}}, nil
	case "Whitespace", "WhitespaceSplit":
		expr, behavior, invert := `\w+|[^\w\s]+`, "Removed", true
		if n.Type == "WhitespaceSplit" {
			expr, behavior, invert = `\s+`, "Removed", false
		}
		re, err := compileRegex(expr, modeUnicode)
		if err != nil {
			return nil, err
		}
		return []hfPre{func(pieces []string, _ bool) []string {
			var out []string
			for _, p := range pieces {
				out = append(out, splitBehavior(p, re, behavior, invert)...)
			}
			return out
		}}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer type %q is not supported", n.Type)
}

// hfDecoder derives the decoding style from the decoder: ByteLevel
// decoders reverse the GPT-2 byte map; the others (Replace ▁, ByteFallback,
// Fuse, Strip, Metaspace) amount to SentencePiece-style decoding.
func hfDecoder(raw json.RawMessage, t *Tokenizer, p *hfPipeline) error {
	n, err := decodeNode(raw)
	if err != nil || n == nil {
		return err
	}
	switch n.Type {
	case "Sequence":
		for _, sub := range n.Decoders {
			if err := hfDecoder(sub, t, p); err != nil {
				return err
			}
		}
	case "ByteLevel":
		t.byteLevel = true
	case "Strip":
		if n.Start > 0 && (n.Content == " " || n.Content == "") {
			p.stripPrefix = true
		}
	case "Metaspace":
		scheme := n.PrependScheme
		if scheme == "" && (n.AddPrefixSpace == nil || *n.AddPrefixSpace) {
			scheme = "always"
		}
		p.stripPrefix = scheme == "always" || scheme == "first"
	}
	return nil
}

// hfSpecials sets BOS/EOS/PAD and the add flags from tokenizer_config.json,
// or else from the post-processor's template and well-known token texts.
func (t *Tokenizer) hfSpecials(post json.RawMessage, cfg *hfConfig) error {
	lookup := func(raw json.RawMessage) int32 {
		if len(raw) == 0 {
			return NoToken
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			var obj struct {
				Content string `json:"content"`
			}
			if json.Unmarshal(raw, &obj) != nil {
				return NoToken
			}
			s = obj.Content
		}
		if id, ok := t.ids[s]; ok {
			return id
		}
		return NoToken
	}
	guess := func(texts ...string) int32 {
		for _, s := range texts {
			if id, ok := t.ids[s]; ok {
				return id
			}
		}
		return NoToken
	}
	if cfg != nil {
		t.bos, t.eos, t.pad = lookup(cfg.BOS), lookup(cfg.EOS), lookup(cfg.PAD)
		if u := lookup(cfg.UNK); u != NoToken {
			t.unk = u
		}
	}
	// The template says what encode adds: [BOS] $A [EOS].
	var tplBOS, tplEOS int32 = NoToken, NoToken
	if n, err := decodeNode(post); err == nil && n != nil {
		nodes := []*hfNode{n}
		if n.Type == "Sequence" {
			nodes = nodes[:0]
			for _, raw := range n.Processors {
				if s, err := decodeNode(raw); err == nil && s != nil {
					nodes = append(nodes, s)
				}
			}
		}
		for _, s := range nodes {
			if s.Type != "TemplateProcessing" || len(s.Single) == 0 {
				continue
			}
			if st := s.Single[0].SpecialToken; st != nil {
				tplBOS = guess(st.ID)
			}
			if st := s.Single[len(s.Single)-1].SpecialToken; st != nil && len(s.Single) > 1 {
				tplEOS = guess(st.ID)
			}
		}
	}
	if t.bos == NoToken {
		t.bos = tplBOS
	}
	if t.eos == NoToken {
		t.eos = tplEOS
	}
	if t.bos == NoToken {
		t.bos = guess("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|endoftext|>")
	}
	if t.eos == NoToken {
		t.eos = guess("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>", "<|im_end|>")
	}
	t.addBOS = tplBOS != NoToken && tplBOS == t.bos
	t.addEOS = tplEOS != NoToken && tplEOS == t.eos
	if cfg != nil && cfg.AddBOS != nil {
		t.addBOS = *cfg.AddBOS
	}
	if cfg != nil && cfg.AddEOS != nil {
		t.addEOS = *cfg.AddEOS
	}
	return nil
}

// quoteRegex escapes s for compileRegex.
func quoteRegex(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ') {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// splitBehavior splits s around the matches of re as the tokenizers
// library's SplitDelimiterBehavior does.
func splitBehavior(s string, re *regex, behavior string, invert bool) []string {
	in := []rune(s)
	type span struct {
		lo, hi int
		match  bool
	}
	var spans []span
	prev := 0
	for _, m := range re.matches(in) {
		if m[1] == m[0] {
			continue
		}
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], false})
		}
		spans = append(spans, span{m[0], m[1], true})
		prev = m[1]
	}
	if prev < len(in) {
		spans = append(spans, span{prev, len(in), false})
	}
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var out []string
	text := func(sp span) string { return string(in[sp.lo:sp.hi]) }
	switch behavior {
	case "Isolated":
		for _, sp := range spans {
			out = append(out, text(sp))
		}
	case "Removed":
		for _, sp := range spans {
			if !sp.match {
				out = append(out, text(sp))
			}
		}
	case "MergedWithPrevious":
		for _, sp := range spans {
			if sp.match && len(out) > 0 {
				out[len(out)-1] += text(sp)
			} else {
				out = append(out, text(sp))
			}
		}
	case "MergedWithNext":
		pending := ""
		for _, sp := range spans {
			if sp.match {
				if pending != "" {
					out = append(out, pending)
				}
				pending = text(sp)
				continue
			}
			out = append(out, pending+text(sp))
			pending = ""
		}
		if pending != "" {
			out = append(out, pending)
		}
	case "Contiguous":
		lastMatch := false
		for _, sp := range spans {
			if sp.match && lastMatch && len(out) > 0 {
				out[len(out)-1] += text(sp)
			} else {
				out = append(out, text(sp))
			}
			lastMatch = sp.match
		}
	}
	return out
}

// replaceAll replaces every non-empty match of r in s with repl.
func (r *regex) replaceAll(s, repl string) string {
	in := []rune(s)
	var b strings.Builder
	prev := 0
	for _, m := range r.matches(in) {
		if m[1] == m[0] {
			continue
		}
		b.WriteString(string(in[prev:m[0]]))
		b.WriteString(repl)
		prev = m[1]
	}
	b.WriteString(string(in[prev:]))
	return b.String()
}
