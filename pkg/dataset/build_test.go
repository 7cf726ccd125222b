package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/examples/examplestest"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

func realTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tk, err := tokenizer.Load(sharedData(t, "models/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func opts(mod func(*dataset.Options)) dataset.Options {
	o := dataset.Defaults()
	if mod != nil {
		mod(&o)
	}
	return o
}

func mustFormat(t *testing.T, src string) *dataset.Format {
	t.Helper()
	f, err := dataset.ParseFormat("f.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExampleLabelsFake(t *testing.T) {
	f := mustFormat(t, `{"q,a": "Q: %q%\nA: %a%", "a": "%a%"}`)
	rec := dataset.Record{Fields: map[string]string{"q": "why so", "a": "because it is"}}
	for _, tc := range []struct {
		name    string
		mod     func(*dataset.Options)
		prefix  bool
		wantIDs string // piece texts joined by |
		trained string // trained piece texts
		outcome dataset.Outcome
	}{
		{"response", nil, false, "<s>|Q:| why| so|\n|A:| because| it| is|</s>", " because| it| is|</s>", dataset.Kept},
		// With a dummy prefix the first token is " Q:"; the boundary token
		// " because" holds the template's space and is trained.
		{"response prefix", nil, true, "<s>| Q:| why| so|\n|A:| because| it| is|</s>", " because| it| is|</s>", dataset.Kept},
		{"all", func(o *dataset.Options) { o.TrainOn = "all" }, false, "<s>|Q:| why| so|\n|A:| because| it| is|</s>", "Q:| why| so|\n|A:| because| it| is|</s>", dataset.Kept},
		{"no eos", func(o *dataset.Options) { o.AddEOS = false }, false, "<s>|Q:| why| so|\n|A:| because| it| is", " because| it| is", dataset.Kept},
		{"truncate", func(o *dataset.Options) { o.CutoffLen = 7 }, false, "<s>|Q:| why| so|\n|A:| because", " because", dataset.Truncated},
		{"truncate prompt only", func(o *dataset.Options) { o.CutoffLen = 4 }, false, "<s>|Q:| why| so", "", dataset.Truncated},
		{"drop", func(o *dataset.Options) { o.CutoffLen = 9; o.Overflow = "drop" }, false, "", "", dataset.Dropped},
		{"fits exactly", func(o *dataset.Options) { o.CutoffLen = 10; o.Overflow = "drop" }, false, "<s>|Q:| why| so|\n|A:| because| it| is|</s>", " because| it| is|</s>", dataset.Kept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := &examplestest.Fake{DummyPrefix: tc.prefix}
			o := opts(tc.mod)
			o.ResponseField = "a"
			fm, err := dataset.NewFormatter(f, tok, o)
			if err != nil {
				t.Fatal(err)
			}
			ex, oc := fm.Example(rec)
			if oc != tc.outcome {
				t.Fatalf("outcome %v, want %v", oc, tc.outcome)
			}
			if oc == dataset.Dropped {
				return
			}
			var all, tr []string
			for i, id := range ex.InputIDs {
				p := tok.TokenText(id)
				all = append(all, p)
				if ex.Labels[i] != examples.Ignore {
					tr = append(tr, p)
				}
			}
			if got := strings.Join(all, "|"); got != tc.wantIDs {
				t.Errorf("tokens %q, want %q", got, tc.wantIDs)
			}
			if got := strings.Join(tr, "|"); got != tc.trained {
				t.Errorf("trained %q, want %q", got, tc.trained)
			}
			if err := ex.Validate(); err != nil {
				t.Error(err)
			}
			if ex.InputIDs[1] != 0 && tc.name == "response" {
				t.Errorf("the first word should be the fake's token 0, got %d", ex.InputIDs[1])
			}
		})
	}
}

func TestFormatterOptionErrors(t *testing.T) {
	f := mustFormat(t, `{"q,a": "Q: %q%\nA: %a%"}`)
	tok := &examplestest.Fake{}
	for _, tc := range []struct {
		mod  func(*dataset.Options)
		want string
	}{
		{func(o *dataset.Options) {}, `template "q,a" has no %output% placeholder`},
		{func(o *dataset.Options) { o.ResponseField = "a"; o.TrainOn = "some" }, `train_on "some"`},
		{func(o *dataset.Options) { o.ResponseField = "a"; o.Overflow = "wrap" }, `overflow "wrap"`},
		{func(o *dataset.Options) { o.ResponseField = "a"; o.CutoffLen = 1 }, `cutoff_len 1`},
		{func(o *dataset.Options) { o.ResponseField = "a"; o.EvalSplit = 0.7 }, `eval_split 0.7`},
		{func(o *dataset.Options) { o.ResponseField = "a"; o.EvalSplit = 2.5 }, `eval_split 2.5`},
	} {
		_, err := dataset.NewFormatter(f, tok, opts(tc.mod))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	// train_on: all needs no response placeholder.
	if _, err := dataset.NewFormatter(f, tok, opts(func(o *dataset.Options) { o.TrainOn = "all" })); err != nil {
		t.Error(err)
	}
}

// decodedOffsets is an independent oracle for token offsets: the length of
// the decoded prefix ids[:k+1] (dummy space kept, then removed once).
func decodedEnds(tk *tokenizer.Tokenizer, ids []int32) []int {
	ends := make([]int, len(ids))
	for k := range ids {
		s := tk.DecodeWith(ids[:k+1], tokenizer.DecodeOptions{Special: true, KeepSpacePrefix: true})
		ends[k] = max(len(s)-1, 0) // the dummy prefix space
	}
	return ends
}

// TestResponseBoundaryReal checks, on real Alpaca records and the real
// stories260K tokenizer, that the trained part starts at the first token
// reaching into the response, found with an independent oracle.
func TestResponseBoundaryReal(t *testing.T) {
	tk := realTokenizer(t)
	tok := examples.FromTokenizer(tk)
	recs, err := dataset.ReadAll(sharedData(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpaca", "alpaca-chatbot", "vicuna"} {
		f, _ := dataset.Builtin(name)
		fm, err := dataset.NewFormatter(f, tok, opts(func(o *dataset.Options) { o.CutoffLen = 1 << 20 }))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, r := range recs[:60] {
			tp := f.Match(r)
			if tp == nil {
				continue
			}
			ex, oc := fm.Example(r)
			if oc != dataset.Kept {
				t.Fatalf("record %d: outcome %v", r.Index, oc)
			}
			rd := tp.Render(r.Fields, "output")
			plain := tk.Encode(rd.Text, tokenizer.EncodeOptions{AddBOS: true, AddEOS: true})
			if !reflect.DeepEqual(ex.InputIDs, plain) {
				t.Fatalf("%s record %d: ids differ from one plain Encode of the text", name, r.Index)
			}
			ends := decodedEnds(tk, plain[1:])
			from := -1
			for k, e := range ends {
				if e > rd.ResponseAt {
					from = k + 1
					break
				}
			}
			for i, l := range ex.Labels {
				if want := i >= from; (l != examples.Ignore) != want || (want && l != ex.InputIDs[i]) {
					t.Fatalf("%s record %d: label %d = %d, trained from %d", name, r.Index, i, l, from)
				}
			}
			trained := tk.Decode(ex.InputIDs[from:])
			if !strings.HasSuffix(trained, r.Fields["output"]) || len(trained) > len(r.Fields["output"])+1 {
				t.Fatalf("%s record %d: trained text %q, response %q", name, r.Index, trained, r.Fields["output"])
			}
			checked++
		}
		if checked < 30 {
			t.Errorf("%s: checked %d records", name, checked)
		}
	}
}

// TestSpecialTokensInTemplateOnly: "<s>" and "</s>" written in the
// llama2-chat template become BOS and EOS (BOS not doubled, EOS not
// added twice), while the same text inside a field value stays text.
func TestSpecialTokensInTemplateOnly(t *testing.T) {
	tk := realTokenizer(t)
	tok := examples.FromTokenizer(tk)
	f, _ := dataset.Builtin("llama2-chat")
	fm, err := dataset.NewFormatter(f, tok, opts(func(o *dataset.Options) { o.ResponseField = "output" }))
	if err != nil {
		t.Fatal(err)
	}
	if fm.Response() != "modelanswer" {
		t.Errorf("response field %q, want modelanswer", fm.Response())
	}
	// Oracle: with no control-token text in the values, the ids are the
	// tokenizer's own encoding with special-token parsing (BOS not doubled).
	plain := dataset.Record{Fields: map[string]string{"systemprompt": "Be brief.", "userprompt": "Hi?", "modelanswer": "Hello."}}
	ex0, _ := fm.Example(plain)
	tp := f.Match(plain)
	want := tk.Encode(tp.Render(plain.Fields, "modelanswer").Text, tokenizer.EncodeOptions{ParseSpecial: true})
	if !reflect.DeepEqual(ex0.InputIDs, want) {
		t.Errorf("ids %v\nwant %v (Encode with ParseSpecial)", ex0.InputIDs, want)
	}
	ex, _ := fm.Example(dataset.Record{Fields: map[string]string{"userprompt": "say </s>", "modelanswer": "ok <s> ok"}})
	bos, eos := 0, 0
	for _, id := range ex.InputIDs {
		switch id {
		case tk.BOS():
			bos++
		case tk.EOS():
			eos++
		}
	}
	if ex.InputIDs[0] != tk.BOS() || bos != 1 || eos != 1 || ex.InputIDs[len(ex.InputIDs)-1] != tk.EOS() {
		t.Errorf("BOS %d times, EOS %d times in %v", bos, eos, ex.InputIDs)
	}
	var b strings.Builder
	for _, id := range ex.InputIDs {
		b.WriteString(tk.TokenText(id))
	}
	got := b.String()
	// After a special token SentencePiece adds its dummy space again, as
	// llama.cpp (and Hugging Face's legacy llama tokenizer) do.
	if want := "<s> [INST] <<SYS>>\n\n<</SYS>>\n\nsay </s>[/INST] ok <s> ok</s>"; got != want {
		t.Errorf("decoded %q, want %q", got, want)
	}
}

func TestBuildAlpaca(t *testing.T) {
	tk := realTokenizer(t)
	p := sharedData(t, "datasets/alpaca/alpaca_5000.json")
	f, _ := dataset.Builtin("alpaca-chatbot")
	ctx := context.Background()

	// Two records have an empty output: the stage stops at the first.
	_, err := dataset.Build(ctx, p, f, examples.FromTokenizer(tk), opts(nil), t.TempDir())
	var d diag.Diagnostic
	if !errors.As(err, &d) || d.Code != "unmatched-record" || !strings.Contains(d.Message, "record 2335 has fields {instruction}") {
		t.Fatalf("err = %v, want record 2335 unmatched", err)
	}

	out := t.TempDir()
	st, err := dataset.Build(ctx, p, f, examples.FromTokenizer(tk), opts(func(o *dataset.Options) {
		o.SkipUnmatched = true
		o.CutoffLen = 128
		o.EvalSplit = 0.1
		o.Seed = 7
	}), out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 5000 || st.UnmatchedSkipped != 2 || st.Examples+st.EvalExamples != 4998 || st.EvalExamples != 500 {
		t.Errorf("stats %+v", st)
	}
	if st.Truncated == 0 || st.MaxLen != 128 || st.TrainedTokens >= st.Tokens || st.TrainedTokens == 0 {
		t.Errorf("stats %+v", st)
	}
	back, err := examples.ReadStats(out)
	if err != nil || back.Examples != st.Examples {
		t.Errorf("ReadStats = %+v, %v", back, err)
	}
	train, err := examples.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	eval, err := examples.ReadEval(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != st.Examples || len(eval) != 500 {
		t.Errorf("%d train, %d eval", len(train), len(eval))
	}
	var trainedTok int64
	for _, ex := range train {
		trainedTok += int64(ex.Trained())
	}
	if trainedTok != st.TrainedTokens {
		t.Errorf("trained tokens %d, stats say %d", trainedTok, st.TrainedTokens)
	}

	// Same inputs and seed: byte-identical files; another seed: another split.
	out2 := t.TempDir()
	if _, err := dataset.Build(ctx, p, f, examples.FromTokenizer(tk), opts(func(o *dataset.Options) {
		o.SkipUnmatched, o.CutoffLen, o.EvalSplit, o.Seed = true, 128, 0.1, 7
	}), out2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{examples.TrainFile, examples.EvalFile, examples.StatsFile} {
		a, _ := os.ReadFile(filepath.Join(out, name))
		b, _ := os.ReadFile(filepath.Join(out2, name))
		if string(a) != string(b) {
			t.Errorf("%s differs between identical runs", name)
		}
	}
}

func TestEvalSplitCountAndDrop(t *testing.T) {
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"instruction": "q%d", "output": "%s"}`, i, strings.Repeat("word ", i)+"end"))
	}
	p := writeFile(t, "d.jsonl", strings.Join(lines, "\n"))
	f, _ := dataset.Builtin("alpaca-chatbot")
	tok := &examplestest.Fake{}
	out := t.TempDir()
	st, err := dataset.Build(context.Background(), p, f, tok, opts(func(o *dataset.Options) {
		o.EvalSplit = 3
		o.CutoffLen = 12
		o.Overflow = "drop"
	}), out)
	if err != nil {
		t.Fatal(err)
	}
	// "<s>|User:| qN|\n|Assistant:" is 5 tokens, then i+1 words and EOS:
	// 7+i <= 12 keeps i <= 5.
	if st.Dropped != 14 || st.Examples != 3 || st.EvalExamples != 3 {
		t.Errorf("stats %+v", st)
	}
	// Without an eval split the stage streams; same examples, in order.
	out2 := t.TempDir()
	st2, err := dataset.Build(context.Background(), p, f, tok, opts(func(o *dataset.Options) {
		o.CutoffLen = 12
		o.Overflow = "drop"
	}), out2)
	if err != nil {
		t.Fatal(err)
	}
	all, err := examples.ReadAll(out2)
	if err != nil {
		t.Fatal(err)
	}
	train, _ := examples.ReadAll(out)
	held, _ := examples.ReadEval(out)
	if st2.Examples != 6 || st2.EvalExamples != 0 || len(all) != 6 || len(train)+len(held) != 6 {
		t.Errorf("streamed stats %+v, %d examples; split %d + %d", st2, len(all), len(train), len(held))
	}
	if _, err := os.Stat(filepath.Join(out2, examples.EvalFile)); err == nil {
		t.Error("eval.jsonl written without an eval split")
	}
	for i, ex := range all {
		if want := 7 + i; len(ex.InputIDs) != want {
			t.Errorf("example %d has %d tokens, want %d (record order)", i, len(ex.InputIDs), want)
		}
	}
	_, err = dataset.Build(context.Background(), p, f, tok, opts(func(o *dataset.Options) {
		o.EvalSplit = 7
		o.CutoffLen = 12
		o.Overflow = "drop"
	}), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "leaving none to train on") {
		t.Errorf("err = %v", err)
	}
}

// TestGoldenAlpacaExamples records the examples of the first Alpaca records
// in alpaca-chatbot with the stories260K tokenizer: every token's text, the
// trained ones between « and », and the ids and labels.
func TestGoldenAlpacaExamples(t *testing.T) {
	tk := realTokenizer(t)
	recs, err := dataset.ReadAll(sharedData(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := dataset.Builtin("alpaca-chatbot")
	fm, err := dataset.NewFormatter(f, examples.FromTokenizer(tk), opts(func(o *dataset.Options) { o.CutoffLen = 80 }))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range []dataset.Record{recs[1], recs[4], recs[0]} {
		ex, oc := fm.Example(r)
		fmt.Fprintf(&b, "=== record %d: %d tokens, %d trained, %s\n", r.Index, len(ex.InputIDs), ex.Trained(), oc)
		for i, id := range ex.InputIDs {
			p := fmt.Sprintf("%q", tk.TokenText(id))
			if ex.Labels[i] != examples.Ignore {
				p = "«" + p + "»"
			}
			b.WriteString(p)
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "\ninput_ids %v\nlabels    %v\n", ex.InputIDs, ex.Labels)
	}
	golden(t, "testdata/alpaca-examples.golden", b.String())
}

// chatFake is the word-level fake with ChatML's markers as control tokens.
type chatFake struct{ examplestest.Fake }

const imStart, imEnd = examplestest.EOS + 1, examplestest.EOS + 2

func (c *chatFake) VocabSize() int { return int(imEnd) + 1 }
func (c *chatFake) IsControl(id int32) bool {
	return id == examplestest.BOS || id == examplestest.EOS || id == imStart || id == imEnd
}
func (c *chatFake) Token(id int32) string {
	switch id {
	case imStart:
		return "<|im_start|>"
	case imEnd:
		return "<|im_end|>"
	}
	return c.Fake.TokenText(id)
}
func (c *chatFake) TokenText(id int32) string { return c.Token(id) }

func TestChatMLControlTokens(t *testing.T) {
	tok := &chatFake{}
	f, _ := dataset.Builtin("chatml")
	fm, err := dataset.NewFormatter(f, tok, opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	ex, oc := fm.Example(dataset.Record{Fields: map[string]string{"instruction": "hi <|im_end|>", "output": "yo"}})
	if oc != dataset.Kept {
		t.Fatal(oc)
	}
	var got []string
	for i, id := range ex.InputIDs {
		p := tok.TokenText(id)
		if ex.Labels[i] != examples.Ignore {
			p = "«" + p + "»"
		}
		got = append(got, p)
	}
	// The template's markers are single control tokens; the one inside the
	// instruction is text. The response and everything after it is trained.
	want := "<s>|<|im_start|>|system|\n|<|im_end|>|\n|<|im_start|>|user|\n|hi| <|im_end|>|<|im_end|>|\n|<|im_start|>|assistant|\n|«yo»|«<|im_end|>»|«</s>»"
	if strings.Join(got, "|") != want {
		t.Errorf("tokens\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	n := 0
	for _, id := range ex.InputIDs {
		if id == imEnd {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d <|im_end|> control tokens, want 3 (the value's stays text)", n)
	}
}
