// Package chunk cuts raw text into overlapping token windows for training.
//
// The algorithm (docs/data.md has the full statement):
//
//  1. Each file is read as UTF-8, "\r" removed. Files never share a window.
//  2. The text is split on the hard cut string into blocks; no window spans
//     a hard cut. Blank blocks, and blocks shorter than MinChars characters
//     (after trimming white space), are skipped and counted.
//  3. Each block is tokenized once (with EOS appended when AddEOS); token
//     offsets come from that one tokenization, never from decoding.
//  4. Windows of W = CutoffLen (less one for BOS) tokens: the first starts at
//     the block's first token; each next one starts Step = W - OverlapLen
//     tokens after the previous start, unless a newline lies within
//     NewlineFavorLen characters after that start and inside the previous
//     window, in which case it starts just after the first such newline.
//     The window that reaches the block's end is the last, so a block
//     shorter than W is one window, every token is in some window, and the
//     last window always holds tokens the previous one did not.
//  5. Every window is an example: BOS (when AddBOS, not trained) and the
//     window's tokens, all trained. No padding.
package chunk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/lora-dev/lora/pkg/examples"
)

// Options are the chunk stage's settings (the recipe's chunk keys).
type Options struct {
	CutoffLen       int // tokens per example, BOS included
	OverlapLen      int // tokens shared by consecutive windows of a block
	NewlineFavorLen int // characters a window start may move to follow a newline; 0: never
	HardCut         string
	MinChars        int
	AddBOS, AddEOS  bool
}

// Defaults returns the recipe defaults.
func Defaults() Options {
	return Options{CutoffLen: 256, OverlapLen: 128, NewlineFavorLen: 128, HardCut: "\n\n\n", AddBOS: true}
}

// check validates the options for a tokenizer that has BOS when bos.
func (o Options) check(bos bool) (width int, err error) {
	width = o.CutoffLen
	if o.AddBOS && bos {
		width--
	}
	switch {
	case o.CutoffLen < 1 || width < 1:
		return 0, fmt.Errorf("cutoff_len %d leaves no room for text (hint: raise cutoff_len)", o.CutoffLen)
	case o.OverlapLen < 0:
		return 0, fmt.Errorf("overlap_len %d is negative", o.OverlapLen)
	case o.OverlapLen >= width:
		return 0, fmt.Errorf("overlap_len %d must be less than the %d text tokens of a window (cutoff_len %d) (hint: lower overlap_len)", o.OverlapLen, width, o.CutoffLen)
	case o.NewlineFavorLen < 0 || o.MinChars < 0:
		return 0, fmt.Errorf("newline_favor_len and min_chars must not be negative")
	}
	return width, nil
}

// HardCut returns the hard cut string with the two-character sequence `\n`
// read as a newline, as the seed's UI does for text typed into a field.
func HardCut(s string) string { return strings.ReplaceAll(s, `\n`, "\n") }

// Block is a piece of text between hard cuts.
type Block struct {
	File   string
	Offset int // byte offset of the block in the file (after "\r" removal)
	Text   string
}

// Blocks splits text on the hard cut string (none when empty). Every block
// is returned, blank ones included, with its offset.
func Blocks(file, text, hardCut string) []Block {
	if hardCut == "" {
		return []Block{{File: file, Text: text}}
	}
	var out []Block
	off := 0
	for {
		i := strings.Index(text[off:], hardCut)
		if i < 0 {
			out = append(out, Block{File: file, Offset: off, Text: text[off:]})
			return out
		}
		out = append(out, Block{File: file, Offset: off, Text: text[off : off+i]})
		off += i + len(hardCut)
	}
}

// Window is one chunk of a block: tokens [Start, End) of its tokenization.
type Window struct {
	Start, End int
	// Moved reports that the start was moved to follow a newline, so the
	// overlap with the previous window is less than configured.
	Moved bool
}

// Windows places the windows over a block's tokens. text is the block's
// text, toks its tokenization (ends index text), width the text tokens per
// window. It is the heart of the chunk stage; see the package comment.
func Windows(text string, toks examples.Tokens, width, overlap, favor int) []Window {
	n := len(toks.IDs)
	if n == 0 {
		return nil
	}
	step := width - overlap
	var out []Window
	s, moved := 0, false
	for {
		e := min(s+width, n)
		out = append(out, Window{Start: s, End: e, Moved: moved})
		if e == n {
			return out
		}
		next := s + step
		moved = false
		if favor > 0 {
			if k, ok := afterNewline(text, toks, next, e, favor); ok {
				next, moved = k, true
			}
		}
		s = next
	}
}

// afterNewline finds the first newline less than favor characters after
// the start of token from, and before token limit (the previous window's
// end), and returns the first token that starts after it. That token is at
// most limit, so no token is skipped.
func afterNewline(text string, toks examples.Tokens, from, limit, favor int) (int, bool) {
	c := toks.Start(from)
	end := toks.Start(limit)
	chars := 0
	for i := c; i < end; {
		if chars >= favor {
			return 0, false
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == '\n' {
			// The first token that starts after the newline.
			for k := from + 1; k <= limit; k++ {
				if toks.Start(k) > i {
					return k, true
				}
			}
			return 0, false
		}
		i += size
		chars++
	}
	return 0, false
}

// Files returns the text files of path: path itself when it is a file, or
// the *.txt files directly inside it when it is a directory, in natural
// order ("2.txt" before "10.txt").
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("raw text: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("raw text: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".txt") {
			names = append(names, e.Name())
		}
	}
	SortNatural(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("raw text: directory %s has no .txt files (hint: put the text in files ending in .txt)", path)
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(path, n)
	}
	return out, nil
}

// Build runs the chunk stage over path (a file, or a directory of .txt
// files) and writes examples.jsonl and examples.json into out.
func Build(ctx context.Context, path string, tok examples.Tokenizer, opts Options, out string) (examples.Stats, error) {
	st := examples.Stats{Kind: "chunk", Source: filepath.Base(path)}
	bos := tok.AddBOS() && opts.AddBOS && tok.BOS() >= 0
	width, err := opts.check(tok.BOS() >= 0)
	if err != nil {
		return st, err
	}
	if !bos {
		width = opts.CutoffLen
	}
	files, err := Files(path)
	if err != nil {
		return st, err
	}
	err = examples.Write(filepath.Join(out, examples.TrainFile), func(enc *examples.Encoder) error {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("raw text: %w", err)
			}
			if !utf8.Valid(data) {
				return fmt.Errorf("raw text %s is not valid UTF-8 (hint: convert it, e.g. iconv -t UTF-8)", f)
			}
			text := strings.ReplaceAll(string(data), "\r", "")
			for _, b := range Blocks(f, text, HardCut(opts.HardCut)) {
				if err := ctx.Err(); err != nil {
					return err
				}
				trimmed := strings.TrimSpace(b.Text)
				if trimmed == "" {
					continue
				}
				st.Records++
				if utf8.RuneCountInString(trimmed) < opts.MinChars {
					st.ShortSkipped++
					continue
				}
				for _, ex := range chunkBlock(b.Text, tok, opts, width, bos) {
					st.Count(ex, false)
					if err := enc.Add(ex); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if st.Examples == 0 {
		return st, fmt.Errorf("raw text %s gave no examples (%d blocks, %d under min_chars %d) (hint: check the file, or lower min_chars)", path, st.Records, st.ShortSkipped, opts.MinChars)
	}
	return st, examples.WriteStats(out, st)
}

// chunkBlock tokenizes one block once and cuts it into examples.
func chunkBlock(text string, tok examples.Tokenizer, opts Options, width int, bos bool) []examples.Example {
	toks := Tokenize(tok, text, opts.AddEOS)
	var out []examples.Example
	for _, w := range Windows(text, toks, width, opts.OverlapLen, opts.NewlineFavorLen) {
		ids := make([]int32, 0, w.End-w.Start+1)
		from := 0
		if bos {
			ids = append(ids, tok.BOS())
			from = 1
		}
		ids = append(ids, toks.IDs[w.Start:w.End]...)
		out = append(out, examples.Example{InputIDs: ids, Labels: examples.Labels(ids, from)})
	}
	return out
}

// Tokenize encodes a block once, with EOS after it when eos (and the
// tokenizer has one); EOS covers no text.
func Tokenize(tok examples.Tokenizer, text string, eos bool) examples.Tokens {
	toks := examples.Encode(tok, text)
	if eos && tok.EOS() >= 0 {
		toks.IDs = append(toks.IDs, tok.EOS())
		toks.Ends = append(toks.Ends, len(text))
	}
	return toks
}
