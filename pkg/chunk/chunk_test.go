package chunk_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/chunk"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/examples/examplestest"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

func sharedData(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test asset %s absent (../shared/data from the repository root): %v", rel, err)
	}
	return p
}

// fakeTokens tokenizes with the word-level fake (no dummy prefix).
func fakeTokens(text string) (*examplestest.Fake, examples.Tokens) {
	tok := &examplestest.Fake{}
	return tok, examples.Encode(tok, text)
}

func TestWindowsTable(t *testing.T) {
	words := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " w%d", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name                  string
		text                  string
		width, overlap, favor int
		want                  []chunk.Window
	}{
		{"short block is one window", words(3), 8, 4, 0, []chunk.Window{{0, 3, false}}},
		{"exactly one window", words(8), 8, 4, 0, []chunk.Window{{0, 8, false}}},
		{"one more token", words(9), 8, 4, 0, []chunk.Window{{0, 8, false}, {4, 9, false}}},
		// The seed's split would end with a window of only overlap tokens
		// ([8,12) after [4,12)); here the window reaching the end is last.
		{"no overlap-only tail", words(12), 8, 4, 0, []chunk.Window{{0, 8, false}, {4, 12, false}}},
		{"steps", words(20), 8, 2, 0, []chunk.Window{{0, 8, false}, {6, 14, false}, {12, 20, false}}},
		{"zero overlap", words(10), 4, 0, 0, []chunk.Window{{0, 4, false}, {4, 8, false}, {8, 10, false}}},
		// tokens: " a"0 " b"1 " c"2 "\n"3 "d"4 " e"5 " f"6 " g"7 " h"8 " i"9
		// The second window would start at token 2 (" c"); the newline two
		// characters later moves it to "d".
		{"moved to newline", " a b c\nd e f g h i", 6, 4, 8, []chunk.Window{{0, 6, false}, {4, 10, true}}},
		{"newline too far", " a b c\nd e f g h i", 6, 4, 2, []chunk.Window{{0, 6, false}, {2, 8, false}, {4, 10, false}}},
		// tokens: " a"0 " b"1 " c"2 " d"3 " e"4 "\n"5 "f"6 " g"7 " h"8
		// A newline beyond the previous window's end may not be used (it
		// would leave tokens out of every window): the second window starts
		// at 2. The third may move from 4 to 6, just after the newline, which
		// is the end of the previous window.
		{"newline outside previous window", " a b c d e\nf g h", 4, 2, 20, []chunk.Window{{0, 4, false}, {2, 6, false}, {6, 9, true}}},
		{"newline at the end of the previous window", " a b c\nd e f", 4, 1, 20, []chunk.Window{{0, 4, false}, {4, 7, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, toks := fakeTokens(tc.text)
			got := chunk.Windows(tc.text, toks, tc.width, tc.overlap, tc.favor)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Windows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSortNatural(t *testing.T) {
	names := []string{"10.txt", "2.txt", "b.txt", "a10b.txt", "a2b.txt", "1.txt", "01.txt", "a.txt", "chapter 100.txt", "chapter 99.txt"}
	chunk.SortNatural(names)
	// As the seed's natural_keys: "a2b.txt" splits into "a", 2, "b.txt",
	// and "a" < "a.txt".
	want := []string{"01.txt", "1.txt", "2.txt", "10.txt", "a2b.txt", "a10b.txt", "a.txt", "b.txt", "chapter 99.txt", "chapter 100.txt"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("got %q\nwant %q", names, want)
	}
}

func TestBuildFolderAndOptions(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"10.txt":    "ten ten",
		"2.txt":     "two\r\ntwo\n\n\nthree",
		"1.txt":     "   \n\n\n x",
		"notes.md":  "not text",
		"9.txt.bak": "not text",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	files, err := chunk.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1.txt", "2.txt", "10.txt"}; len(files) != 3 || filepath.Base(files[0]) != want[0] || filepath.Base(files[1]) != want[1] || filepath.Base(files[2]) != want[2] {
		t.Fatalf("files %v", files)
	}
	tok := &examplestest.Fake{}
	out := t.TempDir()
	o := chunk.Defaults()
	o.MinChars = 2
	o.AddEOS = true
	st, err := chunk.Build(context.Background(), dir, tok, o, out)
	if err != nil {
		t.Fatal(err)
	}
	exs, err := examples.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ex := range exs {
		if ex.InputIDs[0] != examplestest.BOS || ex.Labels[0] != examples.Ignore {
			t.Errorf("example %v does not start with an untrained BOS", ex)
		}
		for i := 1; i < len(ex.InputIDs); i++ {
			if ex.Labels[i] != ex.InputIDs[i] {
				t.Errorf("example %v: position %d not trained", ex, i)
			}
		}
		got = append(got, tok.Decode(ex.InputIDs[1:len(ex.InputIDs)-1]))
		if ex.InputIDs[len(ex.InputIDs)-1] != examplestest.EOS {
			t.Errorf("example %v does not end with EOS", ex)
		}
	}
	// 1.txt: a blank block, then " x" (1 character < min_chars 2);
	// 2.txt: "\r" removed, then a hard cut; 10.txt: one block.
	want := []string{"two\ntwo", "three", "ten ten"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("examples %q, want %q", got, want)
	}
	if st.Records != 4 || st.ShortSkipped != 1 || st.Examples != 3 {
		t.Errorf("stats %+v", st)
	}
	// The fake's first word ("two") is token 0: a real token, trained.
	if exs[0].InputIDs[1] != 0 || exs[0].Labels[1] != 0 {
		t.Errorf("token 0 was not kept and trained: %v", exs[0])
	}
}

func TestOptionErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(p, []byte("hello world"), 0o644)
	for _, tc := range []struct {
		mod  func(*chunk.Options)
		want string
	}{
		{func(o *chunk.Options) { o.CutoffLen = 1 }, "cutoff_len 1 leaves no room"},
		{func(o *chunk.Options) { o.CutoffLen = 8; o.OverlapLen = 7 }, "overlap_len 7 must be less than the 7 text tokens"},
		{func(o *chunk.Options) { o.OverlapLen = -1 }, "negative"},
		{func(o *chunk.Options) { o.MinChars = 100 }, "gave no examples"},
	} {
		o := chunk.Defaults()
		tc.mod(&o)
		_, err := chunk.Build(context.Background(), p, &examplestest.Fake{}, o, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if _, err := chunk.Files(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .txt files") {
		t.Errorf("empty dir: %v", err)
	}
}

// TestGoldenBoundaries records the windows of a small text with the real
// stories260K tokenizer: each window's token range and its text.
func TestGoldenBoundaries(t *testing.T) {
	tk, err := tokenizer.Load(sharedData(t, "models/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	tok := examples.FromTokenizer(tk)
	text := "Once upon a time, there was a little girl named Lily.\nShe loved to play outside in the sun.\nOne day, she saw a big red ball.\n\n\nThe end.\n"
	var b strings.Builder
	for _, blk := range chunk.Blocks("story.txt", text, "\n\n\n") {
		toks := chunk.Tokenize(tok, blk.Text, false)
		fmt.Fprintf(&b, "block at %d: %d tokens\n", blk.Offset, len(toks.IDs))
		for _, w := range chunk.Windows(blk.Text, toks, 15, 5, 12) {
			fmt.Fprintf(&b, "  [%d,%d) moved=%v %q\n", w.Start, w.End, w.Moved, blk.Text[toks.Start(w.Start):toks.Ends[w.End-1]])
		}
	}
	golden(t, "testdata/boundaries.golden", b.String())
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\ngot:\n%s", path, got)
	}
}

// FuzzWindows checks the window invariants on arbitrary text and settings.
func FuzzWindows(f *testing.F) {
	f.Add("one two\nthree four five\n\nsix", 4, 2, 5)
	f.Add(" a b c\nd e f g h i", 6, 4, 8)
	f.Add("x", 1, 0, 0)
	f.Fuzz(func(t *testing.T, text string, width, overlap, favor int) {
		if width < 1 || width > 64 || overlap < 0 || overlap >= width || favor < 0 || favor > 1000 || len(text) > 4000 {
			return
		}
		_, toks := fakeTokens(text)
		n := len(toks.IDs)
		ws := chunk.Windows(text, toks, width, overlap, favor)
		if n == 0 {
			if len(ws) != 0 {
				t.Fatalf("windows %v for no tokens", ws)
			}
			return
		}
		if ws[0].Start != 0 || ws[len(ws)-1].End != n {
			t.Fatalf("windows %v do not span [0,%d)", ws, n)
		}
		for i, w := range ws {
			if w.End <= w.Start || w.End-w.Start > width {
				t.Fatalf("window %v (width %d)", w, width)
			}
			if i == 0 {
				continue
			}
			p := ws[i-1]
			if w.Start > p.End || w.Start <= p.Start || w.End <= p.End {
				t.Fatalf("window %v after %v", w, p)
			}
			if ov := p.End - w.Start; (!w.Moved && ov != overlap) || (w.Moved && ov >= overlap) {
				t.Fatalf("window %v after %v: overlap %d, configured %d", w, p, ov, overlap)
			}
			if w.End != n && w.End-w.Start != width {
				t.Fatalf("window %v before the end is not full", w)
			}
		}
	})
}
