// Package examples reads and writes tokenized training examples: input ids with aligned labels.
//
// A stage that produces examples (format, chunk) writes into its output
// directory:
//
//	examples.jsonl  one JSON object per line: {"input_ids":[...],"labels":[...]}
//	eval.jsonl      held-out examples, same layout (present only with an eval split)
//	examples.json   Stats: counts of examples, tokens, trained tokens, truncated, ...
//
// Labels are aligned with input_ids as in Hugging Face datasets: labels[i] is
// input_ids[i] when position i is trained and Ignore (-100) when it is not;
// the trainer does the one-position shift. There is no padding anywhere:
// examples have their own lengths and the trainer pads with a mask, so a real
// token id (0 included) is never mistaken for padding.
package examples

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lora-dev/lora/pkg/atomicfile"
)

// File names inside an examples directory.
const (
	TrainFile = "examples.jsonl"
	EvalFile  = "eval.jsonl"
	StatsFile = "examples.json"
)

// Ignore is the label of a position that is not trained.
const Ignore = -100

// Version is the examples format version written into Stats.
const Version = 1

// MaxLineBytes bounds one line of an examples file (a single example).
const MaxLineBytes = 256 << 20

// Example is one training sequence.
type Example struct {
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

// Trained returns the number of positions whose label is not Ignore.
func (e Example) Trained() int {
	n := 0
	for _, l := range e.Labels {
		if l != Ignore {
			n++
		}
	}
	return n
}

// Validate checks the invariants every example file holds: the same number
// of ids and labels, at least one token, non-negative ids, and each label
// either Ignore or the id at its position.
func (e Example) Validate() error {
	if len(e.InputIDs) == 0 {
		return errors.New("empty example (no input_ids)")
	}
	if len(e.Labels) != len(e.InputIDs) {
		return fmt.Errorf("%d labels for %d input_ids", len(e.Labels), len(e.InputIDs))
	}
	for i, id := range e.InputIDs {
		if id < 0 {
			return fmt.Errorf("input_ids[%d] = %d is negative", i, id)
		}
		if l := e.Labels[i]; l != Ignore && l != id {
			return fmt.Errorf("labels[%d] = %d is neither %d (ignored) nor input_ids[%d] = %d", i, l, Ignore, i, id)
		}
	}
	return nil
}

// Stats describes an examples directory; it is written as examples.json.
type Stats struct {
	Version int    `json:"version"`
	Kind    string `json:"kind"` // "format" or "chunk"
	// Source is what the examples were made from (file names, format name).
	Source string `json:"source,omitempty"`
	// Records counts the input units seen: dataset records for format,
	// text blocks (between hard cuts) for chunk.
	Records int `json:"records"`

	Examples      int   `json:"examples"`
	Tokens        int64 `json:"tokens"`
	TrainedTokens int64 `json:"trained_tokens"`
	MaxLen        int   `json:"max_len"`
	// NoTrained counts examples without a single trained token.
	NoTrained int `json:"no_trained"`

	Truncated        int `json:"truncated"`         // examples cut at cutoff_len
	Dropped          int `json:"dropped"`           // records dropped: longer than cutoff_len with overflow: drop
	UnmatchedSkipped int `json:"unmatched_skipped"` // records no template matched, skipped (skip_unmatched)
	ShortSkipped     int `json:"short_skipped"`     // text blocks under min_chars, skipped

	EvalExamples      int   `json:"eval_examples"`
	EvalTokens        int64 `json:"eval_tokens"`
	EvalTrainedTokens int64 `json:"eval_trained_tokens"`
}

// Count adds ex to the training (eval false) or held-out counts.
func (s *Stats) Count(ex Example, eval bool) {
	tr := int64(ex.Trained())
	if eval {
		s.EvalExamples++
		s.EvalTokens += int64(len(ex.InputIDs))
		s.EvalTrainedTokens += tr
		return
	}
	s.Examples++
	s.Tokens += int64(len(ex.InputIDs))
	s.TrainedTokens += tr
	s.MaxLen = max(s.MaxLen, len(ex.InputIDs))
	if tr == 0 {
		s.NoTrained++
	}
}

// WriteStats writes s as dir/examples.json atomically.
func WriteStats(dir string, s Stats) error {
	s.Version = Version
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, StatsFile), append(b, '\n'), 0o644)
}

// ReadStats reads dir/examples.json.
func ReadStats(dir string) (Stats, error) {
	p := filepath.Join(dir, StatsFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return Stats{}, fmt.Errorf("read examples stats: %w", err)
	}
	var s Stats
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return Stats{}, fmt.Errorf("%s: %w (hint: rerun the stage that wrote it)", p, err)
	}
	if s.Version != Version {
		return Stats{}, fmt.Errorf("%s: examples format version %d, this lora reads version %d (hint: rerun the stage with this lora)", p, s.Version, Version)
	}
	return s, nil
}

// Encoder writes examples as JSON lines; Write hands one to its callback.
type Encoder struct {
	w   *bufio.Writer
	buf []byte
	n   int
}

// Add writes one example. It refuses an example that fails Validate.
func (e *Encoder) Add(ex Example) error {
	if err := ex.Validate(); err != nil {
		return fmt.Errorf("example %d: %w", e.n, err)
	}
	b := append(e.buf[:0], `{"input_ids":[`...)
	b = appendInts(b, ex.InputIDs)
	b = append(b, `],"labels":[`...)
	b = appendInts(b, ex.Labels)
	b = append(b, "]}\n"...)
	e.buf = b
	e.n++
	_, err := e.w.Write(b)
	return err
}

// Len returns the number of examples written so far.
func (e *Encoder) Len() int { return e.n }

func appendInts(b []byte, v []int32) []byte {
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return b
}

// Write creates path atomically: fn adds examples to the encoder, and only
// when it returns nil does the file appear (temp file, fsync, rename).
func Write(path string, fn func(enc *Encoder) error) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		enc := &Encoder{w: bufio.NewWriterSize(w, 1<<16)}
		if err := fn(enc); err != nil {
			return err
		}
		return enc.w.Flush()
	})
}

// Reader streams examples from one examples file.
type Reader struct {
	path string
	f    *os.File
	br   *bufio.Reader
	line int
	ex   Example
	err  error
}

// Open opens dir/examples.jsonl, the training examples of dir.
func Open(dir string) (*Reader, error) { return OpenFile(filepath.Join(dir, TrainFile)) }

// OpenEval opens dir/eval.jsonl. It returns an error wrapping fs.ErrNotExist
// when the stage held nothing out.
func OpenEval(dir string) (*Reader, error) { return OpenFile(filepath.Join(dir, EvalFile)) }

// OpenFile opens an examples file by path.
func OpenFile(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open examples: %w", err)
	}
	return &Reader{path: path, f: f, br: bufio.NewReaderSize(f, 1<<16)}, nil
}

// Next reads the next example; it returns false at the end or on an error
// (see Err).
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	for {
		line, err := r.readLine()
		if err == io.EOF && len(line) == 0 {
			return false
		}
		if err != nil && err != io.EOF {
			r.err = err
			return false
		}
		r.line++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			if err == io.EOF {
				return false
			}
			continue
		}
		var ex Example
		d := json.NewDecoder(bytes.NewReader(line))
		d.DisallowUnknownFields()
		if derr := d.Decode(&ex); derr != nil {
			r.err = fmt.Errorf("%s:%d: %w (hint: the file is damaged; rerun the stage that wrote it)", r.path, r.line, derr)
			return false
		}
		if d.More() {
			r.err = fmt.Errorf("%s:%d: more than one JSON value on the line (hint: rerun the stage that wrote it)", r.path, r.line)
			return false
		}
		if verr := ex.Validate(); verr != nil {
			r.err = fmt.Errorf("%s:%d: %w (hint: rerun the stage that wrote it)", r.path, r.line, verr)
			return false
		}
		r.ex = ex
		return true
	}
}

func (r *Reader) readLine() ([]byte, error) {
	var out []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		out = append(out, frag...)
		if len(out) > MaxLineBytes {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", r.path, r.line+1, MaxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read %s: %w", r.path, err)
		}
		return out, err
	}
}

// Example returns the example Next read.
func (r *Reader) Example() Example { return r.ex }

// Line returns the 1-based line of the example Next read.
func (r *Reader) Line() int { return r.line }

// Err returns the error that stopped Next, if any.
func (r *Reader) Err() error { return r.err }

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// ReadAll reads every training example of dir.
func ReadAll(dir string) ([]Example, error) { return readAll(filepath.Join(dir, TrainFile)) }

// ReadEval reads the held-out examples of dir; none (and no error) when the
// stage held nothing out.
func ReadEval(dir string) ([]Example, error) {
	exs, err := readAll(filepath.Join(dir, EvalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return exs, err
}

func readAll(path string) ([]Example, error) {
	r, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []Example
	for r.Next() {
		out = append(out, r.Example())
	}
	return out, r.Err()
}
