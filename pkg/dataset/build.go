package dataset

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/examples"
)

// Options are the format stage's settings (the recipe's format keys).
type Options struct {
	// TrainOn is "response" (train only the response part: from the
	// response field's placeholder to the end) or "all".
	TrainOn string
	// ResponseField names the response field; "" means the format's own
	// (Format.Response: "output", or "modelanswer" for llama2-chat).
	ResponseField string
	AddEOS        bool
	CutoffLen     int
	// Overflow is "truncate" (keep the first CutoffLen tokens) or "drop".
	Overflow      string
	SkipUnmatched bool
	// EvalSplit holds records out for evaluation: a fraction in (0, 0.5]
	// of the examples, or, when 1 or more, a count. 0: none.
	EvalSplit float64
	// Seed picks the held-out examples.
	Seed uint64
}

// Defaults returns the recipe defaults.
func Defaults() Options {
	return Options{TrainOn: "response", AddEOS: true, CutoffLen: 256, Overflow: "truncate"}
}

// Outcome says what became of one record.
type Outcome int

// Outcomes of Formatter.Example.
const (
	Kept Outcome = iota
	Truncated
	Dropped
	Unmatched
)

func (o Outcome) String() string {
	switch o {
	case Kept:
		return "kept"
	case Truncated:
		return "truncated"
	case Dropped:
		return "dropped"
	case Unmatched:
		return "unmatched"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Formatter turns records into examples.
type Formatter struct {
	format   *Format
	tok      examples.Tokenizer
	opts     Options
	response string
	specials []special
	first    [256]bool // first bytes of the specials' texts
}

type special struct {
	text string
	id   int32
}

// NewFormatter checks the options against the format.
func NewFormatter(f *Format, tok examples.Tokenizer, opts Options) (*Formatter, error) {
	fm := &Formatter{format: f, tok: tok, opts: opts, response: opts.ResponseField}
	if fm.response == "" || (fm.response == DefaultResponse && !f.Uses(DefaultResponse)) {
		fm.response = f.Response
	}
	switch opts.TrainOn {
	case "response", "":
		fm.opts.TrainOn = "response"
		var missing []string
		for _, t := range f.Templates {
			if !strings.Contains(t.Text, "%"+fm.response+"%") {
				missing = append(missing, fmt.Sprintf("%q", t.Key))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("format %s: template %s has no %%%s%% placeholder, so with train_on: response nothing would be trained (hint: set response_field to the field holding the answer, or train_on: all)", f.Name, strings.Join(missing, ", "), fm.response)
		}
	case "all":
	default:
		return nil, fmt.Errorf("train_on %q: want all or response", opts.TrainOn)
	}
	switch opts.Overflow {
	case "", "truncate":
		fm.opts.Overflow = "truncate"
	case "drop":
	default:
		return nil, fmt.Errorf("overflow %q: want truncate or drop", opts.Overflow)
	}
	if opts.CutoffLen <= 1 {
		return nil, fmt.Errorf("cutoff_len %d: want at least 2 tokens", opts.CutoffLen)
	}
	if e := opts.EvalSplit; e < 0 || (e > 0.5 && e < 1) || (e >= 1 && e != math.Trunc(e)) {
		return nil, fmt.Errorf("eval_split %v: want a fraction up to 0.5 or a whole count", opts.EvalSplit)
	}
	seen := map[string]bool{}
	add := func(text string, id int32) {
		if text != "" && !seen[text] {
			seen[text] = true
			fm.specials = append(fm.specials, special{text, id})
		}
	}
	// Control tokens (examples.Controls), else at least BOS and EOS.
	for text, id := range examples.ControlTokens(tok) {
		add(text, id)
	}
	if tok.BOS() >= 0 {
		add(tok.TokenText(tok.BOS()), tok.BOS())
	}
	if tok.EOS() >= 0 {
		add(tok.TokenText(tok.EOS()), tok.EOS())
	}
	for _, sp := range fm.specials {
		fm.first[sp.text[0]] = true
	}
	// Longest first, so "<|im_start|>" wins over a shorter prefix.
	slices.SortFunc(fm.specials, func(a, b special) int {
		if len(a.text) != len(b.text) {
			return len(b.text) - len(a.text)
		}
		return strings.Compare(a.text, b.text)
	})
	return fm, nil
}

// Response returns the response field in use.
func (fm *Formatter) Response() string { return fm.response }

// Example formats and tokenizes one record.
func (fm *Formatter) Example(rec Record) (examples.Example, Outcome) {
	t := fm.format.Match(rec)
	if t == nil {
		return examples.Example{}, Unmatched
	}
	r := t.Render(rec.Fields, fm.response)
	toks := fm.tokenize(r)
	var ids []int32
	var ends []int
	bos := fm.tok.AddBOS() && fm.tok.BOS() >= 0
	if bos {
		ids, ends = append(ids, fm.tok.BOS()), append(ends, 0)
		if len(toks.IDs) > 0 && toks.IDs[0] == fm.tok.BOS() { // the template starts with "<s>"
			toks.IDs, toks.Ends = toks.IDs[1:], toks.Ends[1:]
		}
	}
	ids, ends = append(ids, toks.IDs...), append(ends, toks.Ends...)
	from := 0
	if bos {
		from = 1
	}
	if fm.opts.TrainOn == "response" {
		// The first token reaching into the response is trained, and all
		// after it: a token that merges the template's last space with the
		// response's first word carries the response and must be learnt.
		from = len(ids)
		if r.ResponseAt >= 0 {
			for k := range ids {
				if ends[k] > r.ResponseAt && !(k == 0 && bos) {
					from = k
					break
				}
			}
		}
	}
	if fm.opts.AddEOS && fm.tok.EOS() >= 0 && (len(ids) == 0 || ids[len(ids)-1] != fm.tok.EOS()) {
		ids = append(ids, fm.tok.EOS())
	}
	if len(ids) == 0 {
		return examples.Example{}, Dropped
	}
	ex := examples.Example{InputIDs: ids, Labels: examples.Labels(ids, from)}
	if len(ids) > fm.opts.CutoffLen {
		if fm.opts.Overflow == "drop" {
			return examples.Example{}, Dropped
		}
		ex.InputIDs, ex.Labels = ex.InputIDs[:fm.opts.CutoffLen], ex.Labels[:fm.opts.CutoffLen]
		return ex, Truncated
	}
	return ex, Kept
}

// tokenize encodes the rendered text once per run of text between special
// tokens; special-token text is recognised only where the template put it,
// never inside a field value.
func (fm *Formatter) tokenize(r Rendered) examples.Tokens {
	var out examples.Tokens
	text := r.Text
	emit := func(from, to int) {
		if from >= to {
			return
		}
		seg := examples.Encode(fm.tok, text[from:to])
		out.IDs = append(out.IDs, seg.IDs...)
		for _, e := range seg.Ends {
			out.Ends = append(out.Ends, from+e)
		}
	}
	pos := 0
	for _, lit := range r.Literal {
		for i := lit[0]; i < lit[1]; {
			sp, ok := fm.specialAt(text[i:lit[1]])
			if !ok {
				i++
				continue
			}
			emit(pos, i)
			out.IDs = append(out.IDs, sp.id)
			out.Ends = append(out.Ends, i+len(sp.text))
			i += len(sp.text)
			pos = i
		}
	}
	emit(pos, len(text))
	return out
}

func (fm *Formatter) specialAt(s string) (special, bool) {
	if !fm.first[s[0]] {
		return special{}, false
	}
	for _, sp := range fm.specials {
		if strings.HasPrefix(s, sp.text) {
			return sp, true
		}
	}
	return special{}, false
}

// Build runs the format stage: it formats every record of the dataset at
// path and writes examples.jsonl, eval.jsonl (with an eval split) and
// examples.json into out.
func Build(ctx context.Context, path string, f *Format, tok examples.Tokenizer, opts Options, out string) (examples.Stats, error) {
	fm, err := NewFormatter(f, tok, opts)
	if err != nil {
		return examples.Stats{}, err
	}
	st := examples.Stats{Kind: "format", Source: filepath.Base(path) + " with format " + formatLabel(f)}
	// each calls fn with every example, in record order.
	each := func(fn func(examples.Example) error) error {
		return Read(path, func(rec Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			st.Records++
			ex, oc := fm.Example(rec)
			switch oc {
			case Unmatched:
				if !fm.opts.SkipUnmatched {
					return unmatchedError(path, rec, f)
				}
				st.UnmatchedSkipped++
				return nil
			case Dropped:
				st.Dropped++
				return nil
			case Truncated:
				st.Truncated++
			}
			return fn(ex)
		})
	}
	noExamples := func() error {
		return fmt.Errorf("%s: no examples: %d records, %d dropped as longer than cutoff_len %d, %d unmatched (hint: raise cutoff_len or use overflow: truncate)", path, st.Records, st.Dropped, opts.CutoffLen, st.UnmatchedSkipped)
	}
	if fm.opts.EvalSplit == 0 {
		// Stream: nothing is held in memory.
		var readErr error
		err := examples.Write(filepath.Join(out, examples.TrainFile), func(enc *examples.Encoder) error {
			readErr = each(func(ex examples.Example) error {
				st.Count(ex, false)
				return enc.Add(ex)
			})
			return readErr
		})
		if readErr != nil {
			return st, readErr
		}
		if err != nil {
			return st, err
		}
		if st.Examples == 0 {
			return st, noExamples()
		}
		return st, examples.WriteStats(out, st)
	}
	// The held-out set depends on the number of examples: collect them.
	var exs []examples.Example
	if err := each(func(ex examples.Example) error { exs = append(exs, ex); return nil }); err != nil {
		return st, err
	}
	if len(exs) == 0 {
		return st, noExamples()
	}
	eval, err := evalSet(len(exs), fm.opts.EvalSplit, fm.opts.Seed)
	if err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	if err := writeSplit(filepath.Join(out, examples.TrainFile), exs, eval, false, &st); err != nil {
		return st, err
	}
	if err := writeSplit(filepath.Join(out, examples.EvalFile), exs, eval, true, &st); err != nil {
		return st, err
	}
	return st, examples.WriteStats(out, st)
}

func formatLabel(f *Format) string {
	if _, ok := builtins[f.Name]; ok {
		return f.Name
	}
	return filepath.Base(f.Name)
}

func writeSplit(path string, exs []examples.Example, eval map[int]bool, want bool, st *examples.Stats) error {
	return examples.Write(path, func(enc *examples.Encoder) error {
		for i, ex := range exs {
			if eval[i] != want {
				continue
			}
			st.Count(ex, want)
			if err := enc.Add(ex); err != nil {
				return err
			}
		}
		return nil
	})
}

// unmatchedError names the record, its field set and the format's sets.
func unmatchedError(path string, rec Record, f *Format) error {
	p := Pos(path, rec.Offset)
	return diag.Errorf(diag.At(path, p.Line, p.Col), "unmatched-record",
		"record %d has fields {%s}, which no template of format %s matches (it has {%s})",
		rec.Index, strings.Join(rec.Set(), ","), formatLabel(f), strings.Join(f.Keys(), "}, {")).
		WithHint("add a template for that field set to a format file, fix the record (empty fields count as absent), or set skip_unmatched: true")
}

// evalSet picks the held-out examples: count (split >= 1) or round(split*n)
// of them, those whose index hashes lowest under seed. The choice depends
// only on n, split and seed.
func evalSet(n int, split float64, seed uint64) (map[int]bool, error) {
	k := 0
	switch {
	case split >= 1:
		k = int(split)
	case split > 0:
		k = int(math.Round(split * float64(n)))
		if k == 0 {
			k = 1
		}
	}
	if k == 0 {
		return nil, nil
	}
	if k >= n {
		return nil, fmt.Errorf("eval_split holds out %d of %d examples, leaving none to train on (hint: lower eval_split)", k, n)
	}
	idx := make([]int, n)
	h := make([]uint64, n)
	for i := range idx {
		idx[i] = i
		h[i] = splitmix(seed ^ uint64(i)*0x9e3779b97f4a7c15)
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case h[a] < h[b]:
			return -1
		case h[a] > h[b]:
			return 1
		}
		return a - b
	})
	m := make(map[int]bool, k)
	for _, i := range idx[:k] {
		m[i] = true
	}
	return m, nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
