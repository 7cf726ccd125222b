package examples_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/examples/examplestest"
)

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := []examples.Example{
		{InputIDs: []int32{1, 0, 5, 0}, Labels: []int32{-100, 0, 5, 0}},
		{InputIDs: []int32{7}, Labels: []int32{-100}},
		{InputIDs: []int32{2, 3, 4}, Labels: []int32{2, 3, 4}},
	}
	err := examples.Write(filepath.Join(dir, examples.TrainFile), func(enc *examples.Encoder) error {
		for _, ex := range want {
			if err := enc.Add(ex); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, examples.TrainFile))
	wantRaw := `{"input_ids":[1,0,5,0],"labels":[-100,0,5,0]}
{"input_ids":[7],"labels":[-100]}
{"input_ids":[2,3,4],"labels":[2,3,4]}
`
	if string(raw) != wantRaw {
		t.Errorf("file =\n%s\nwant\n%s", raw, wantRaw)
	}
	got, err := examples.ReadAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadAll = %v, want %v", got, want)
	}
	ev, err := examples.ReadEval(dir)
	if err != nil || ev != nil {
		t.Errorf("ReadEval without eval.jsonl = %v, %v; want nil, nil", ev, err)
	}

	var s examples.Stats
	s.Kind = "format"
	for _, ex := range want {
		s.Count(ex, false)
	}
	if s.Examples != 3 || s.Tokens != 8 || s.TrainedTokens != 6 || s.MaxLen != 4 || s.NoTrained != 1 {
		t.Errorf("stats = %+v", s)
	}
	if err := examples.WriteStats(dir, s); err != nil {
		t.Fatal(err)
	}
	back, err := examples.ReadStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Version = examples.Version
	if back != s {
		t.Errorf("ReadStats = %+v, want %+v", back, s)
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, examples.TrainFile)
	boom := errors.New("boom")
	err := examples.Write(p, func(enc *examples.Encoder) error {
		if err := enc.Add(examples.Example{InputIDs: []int32{1}, Labels: []int32{1}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed write left %v", ents)
	}
}

func TestEncoderRejectsInvalid(t *testing.T) {
	for _, ex := range []examples.Example{
		{},
		{InputIDs: []int32{1, 2}, Labels: []int32{1}},
		{InputIDs: []int32{-1}, Labels: []int32{-100}},
		{InputIDs: []int32{4}, Labels: []int32{5}},
	} {
		err := examples.Write(filepath.Join(t.TempDir(), "x.jsonl"), func(enc *examples.Encoder) error { return enc.Add(ex) })
		if err == nil {
			t.Errorf("Add(%v) succeeded", ex)
		}
	}
}

func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"syntax", "{\"input_ids\":[1],\"labels\":[1]}\n{\"input_ids\":[1,\n", ":2: "},
		{"unknown field", `{"input_ids":[1],"labels":[1],"mask":[1]}`, `:1: json: unknown field "mask"`},
		{"length", `{"input_ids":[1,2],"labels":[1]}`, ":1: 1 labels for 2 input_ids"},
		{"label", "\n\n" + `{"input_ids":[1,2],"labels":[1,3]}`, ":3: labels[1] = 3"},
		{"two values", `{"input_ids":[1],"labels":[1]} {}`, ":1: more than one JSON value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, examples.TrainFile), []byte(tc.body), 0o644)
			_, err := examples.ReadAll(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), examples.TrainFile) {
				t.Errorf("err = %v, want it to name the file and contain %q", err, tc.want)
			}
		})
	}
}

func TestReaderStreams(t *testing.T) {
	dir := t.TempDir()
	err := examples.Write(filepath.Join(dir, examples.EvalFile), func(enc *examples.Encoder) error {
		for i := range 1000 {
			ids := make([]int32, i%17+1)
			for j := range ids {
				ids[j] = int32(i + j)
			}
			if err := enc.Add(examples.Example{InputIDs: ids, Labels: examples.Labels(ids, 1)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := examples.OpenEval(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for r.Next() {
		ex := r.Example()
		if len(ex.InputIDs) != n%17+1 || ex.InputIDs[0] != int32(n) || ex.Labels[0] != examples.Ignore || r.Line() != n+1 {
			t.Fatalf("example %d = %v (line %d)", n, ex, r.Line())
		}
		n++
	}
	if r.Err() != nil || n != 1000 {
		t.Fatalf("read %d examples, err %v", n, r.Err())
	}
}

func TestEncodeOffsets(t *testing.T) {
	for _, prefix := range []bool{false, true} {
		tok := &examplestest.Fake{DummyPrefix: prefix}
		text := "Hello  world\nsecond line\n\nthird"
		toks := examples.Encode(tok, text)
		if len(toks.IDs) != len(toks.Ends) {
			t.Fatal("ids and ends differ in length")
		}
		pieces := examplestest.Pieces(text)
		if prefix {
			pieces = examplestest.Pieces(" " + text)
		}
		// The tokens' spans, cut out of the text, are the pieces (the first
		// without its dummy space).
		for k := range toks.IDs {
			got := text[toks.Start(k):toks.Ends[k]]
			want := pieces[k]
			if prefix && k == 0 {
				want = want[1:]
			}
			if got != want {
				t.Errorf("prefix %v: token %d spans %q, want %q", prefix, k, got, want)
			}
		}
		if toks.Ends[len(toks.Ends)-1] != len(text) {
			t.Errorf("last end %d, want %d", toks.Ends[len(toks.Ends)-1], len(text))
		}
	}
}

// unkTok maps some words to an unknown piece that does not occur in the text.
type unkTok struct{ examplestest.Fake }

func (u *unkTok) TokenText(id int32) string {
	s := u.Fake.TokenText(id)
	if strings.Contains(s, "ß") {
		return "<unk>"
	}
	return s
}

func TestEncodeResynchronises(t *testing.T) {
	tok := &unkTok{}
	text := "a ßb ßc d e"
	toks := examples.Encode(tok, text)
	// pieces: "a" " ßb" " ßc" " d" " e" (ß is two bytes): the unknown pair
	// takes the gap up to " d", the first of them all of it.
	wantEnds := []int{1, 9, 9, 11, 13}
	if !reflect.DeepEqual(toks.Ends, wantEnds) {
		t.Errorf("ends = %v, want %v", toks.Ends, wantEnds)
	}
}
