package chunk_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lora-dev/lora/pkg/chunk"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

// checkBlock verifies the chunk invariants for one block and returns the
// examples' token ids the stage must write for it.
func checkBlock(t *testing.T, tk *tokenizer.Tokenizer, blk chunk.Block, o chunk.Options, width int) (out [][]int32, moved int) {
	t.Helper()
	tok := examples.FromTokenizer(tk)
	toks := chunk.Tokenize(tok, blk.Text, o.AddEOS)
	n := len(toks.IDs)
	// One tokenization, faithful to the text.
	if got := tk.Decode(toks.IDs); got != blk.Text {
		t.Fatalf("block at %d: decoding its tokens gives %q, not the block", blk.Offset, got)
	}
	ws := chunk.Windows(blk.Text, toks, width, o.OverlapLen, o.NewlineFavorLen)
	covered := make([]bool, n)
	for i, w := range ws {
		if w.End-w.Start > width || w.End <= w.Start {
			t.Fatalf("block at %d: window %v longer than %d or empty", blk.Offset, w, width)
		}
		for k := w.Start; k < w.End; k++ {
			covered[k] = true
		}
		if hc := chunk.HardCut(o.HardCut); hc != "" && strings.Contains(blk.Text[toks.Start(w.Start):toks.Ends[w.End-1]], hc) {
			t.Fatalf("block at %d: window %v spans the hard cut", blk.Offset, w)
		}
		if i == 0 {
			if w.Start != 0 || w.Moved {
				t.Fatalf("block at %d: first window %v does not start at the block start", blk.Offset, w)
			}
		} else {
			p := ws[i-1]
			if w.Start <= p.Start || w.End <= p.End || w.Start > p.End {
				t.Fatalf("block at %d: window %v after %v: no progress or a gap", blk.Offset, w, p)
			}
			ov := p.End - w.Start
			if !w.Moved && ov != o.OverlapLen {
				t.Fatalf("block at %d: window %v after %v overlaps %d tokens, want %d", blk.Offset, w, p, ov, o.OverlapLen)
			}
			if w.Moved {
				moved++
				// It follows a newline that lies less than newline_favor_len
				// characters after the nominal start, the first one there.
				nominal := toks.Start(p.Start + width - o.OverlapLen)
				start := toks.Start(w.Start)
				nl := strings.IndexByte(blk.Text[nominal:], '\n')
				if ov >= o.OverlapLen || nl < 0 || nominal+nl >= start || utf8.RuneCountInString(blk.Text[nominal:nominal+nl]) >= o.NewlineFavorLen {
					t.Fatalf("block at %d: moved window %v after %v: overlap %d, newline at +%d, start %d", blk.Offset, w, p, ov, nl, start-nominal)
				}
				if toks.Start(w.Start-1) > nominal+nl {
					t.Fatalf("block at %d: moved window %v does not start at the first token after the newline", blk.Offset, w)
				}
			}
		}
		ids := append([]int32(nil), toks.IDs[w.Start:w.End]...)
		if o.AddBOS {
			ids = append([]int32{tk.BOS()}, ids...)
		}
		if len(ids) > o.CutoffLen {
			t.Fatalf("example of %d tokens > cutoff_len %d", len(ids), o.CutoffLen)
		}
		out = append(out, ids)
	}
	if len(ws) == 0 || ws[len(ws)-1].End != n {
		t.Fatalf("block at %d: last window does not reach the end (%v, %d tokens)", blk.Offset, ws, n)
	}
	for k, c := range covered {
		if !c {
			t.Fatalf("block at %d: token %d is in no window", blk.Offset, k)
		}
	}
	return out, moved
}

func TestTinyShakespeareProperties(t *testing.T) {
	tk, err := tokenizer.Load(sharedData(t, "models/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sharedData(t, "datasets/tinyshakespeare/input.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	cut := strings.Index(text, "\n\n\n") // the file has two
	if cut < 0 {
		t.Fatal("tinyshakespeare has no triple newline")
	}
	slice := text[cut-50000 : cut+50000]
	for _, tc := range []struct {
		name  string
		text  string
		opts  chunk.Options
		build bool
	}{
		// The whole file, cut on every blank line (7,000 blocks).
		{"whole file, blank-line cuts", text, chunk.Options{CutoffLen: 64, OverlapLen: 16, NewlineFavorLen: 40, HardCut: "\n\n", AddBOS: true}, false},
		// 100 kB around the first triple newline, with the default cut:
		// two long blocks; also run the stage and compare its file.
		{"defaults around a hard cut", slice, chunk.Defaults(), true},
		{"no newline favor, eos", slice, chunk.Options{CutoffLen: 100, OverlapLen: 30, HardCut: `\n\n\n`, AddEOS: true}, true},
		{"no overlap", slice[:30000], chunk.Options{CutoffLen: 50, OverlapLen: 0, NewlineFavorLen: 200, HardCut: "\n\n\n", AddBOS: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			width := tc.opts.CutoffLen
			if tc.opts.AddBOS {
				width--
			}
			var want [][]int32
			blocks, moved := 0, 0
			for _, blk := range chunk.Blocks("f", tc.text, chunk.HardCut(tc.opts.HardCut)) {
				if strings.TrimSpace(blk.Text) == "" {
					continue
				}
				blocks++
				ids, m := checkBlock(t, tk, blk, tc.opts, width)
				want = append(want, ids...)
				moved += m
			}
			// The favour must act on this text (with no overlap a start
			// cannot move without leaving tokens out, so it never does).
			if tc.opts.NewlineFavorLen > 0 && tc.opts.OverlapLen > 0 && moved == 0 {
				t.Error("no window start was moved to a newline")
			}
			if tc.opts.OverlapLen == 0 && moved > 0 {
				t.Errorf("%d window starts moved with no overlap", moved)
			}
			if !tc.build {
				return
			}
			p := filepath.Join(t.TempDir(), "in.txt")
			os.WriteFile(p, []byte(tc.text), 0o644)
			out := t.TempDir()
			st, err := chunk.Build(context.Background(), p, examples.FromTokenizer(tk), tc.opts, out)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := examples.ReadAll(out)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]int32
			for _, ex := range exs {
				got = append(got, ex.InputIDs)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the stage wrote %d examples, the invariant check expected %d (or different ids)", len(got), len(want))
			}
			if st.Records != blocks || st.Examples != len(want) {
				t.Errorf("stats %+v, %d blocks", st, blocks)
			}
		})
	}
}
