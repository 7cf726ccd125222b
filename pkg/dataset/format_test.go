package dataset_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/diag"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// webuiFiles maps text-generation-webui's format files to our built-ins.
var webuiFiles = map[string]string{
	"alpaca-format.json":         "alpaca",
	"alpaca-chatbot-format.json": "alpaca-chatbot",
	"vicuna-format.json":         "vicuna",
	"ChatML-format.json":         "chatml",
	"llama2-chat-format.json":    "llama2-chat",
}

// tricky records for every field set the formats use: values holding
// placeholders of other fields, percent signs, unicode and newlines.
func trickyRecords() []dataset.Record {
	var out []dataset.Record
	vals := []string{"plain", "50% off %input% and %output%", "ünï\ncode %", "%%", " leading space"}
	sets := [][]string{
		{"instruction", "output"}, {"instruction", "input", "output"},
		{"modelanswer", "userprompt", "systemprompt"}, {"modelanswer", "userprompt"},
	}
	for i, set := range sets {
		for j := range vals {
			f := map[string]string{}
			for k, name := range set {
				f[name] = vals[(j+k)%len(vals)] + " " + name
			}
			out = append(out, dataset.Record{Index: i*len(vals) + j, Fields: f})
		}
	}
	return out
}

// TestBuiltinsMatchWebuiFiles is the independent truth for the built-ins:
// text-generation-webui's own format files, loaded by our parser, render
// every record exactly as the built-in of the same name does.
func TestBuiltinsMatchWebuiFiles(t *testing.T) {
	dir := sharedData(t, "datasets/text-generation-webui-formats")
	alpaca, err := dataset.ReadAll(sharedData(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	recs := append(trickyRecords(), alpaca...)
	for file, name := range webuiFiles {
		t.Run(name, func(t *testing.T) {
			ff, err := dataset.LoadFormat(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			bf, ok := dataset.Builtin(name)
			if !ok {
				t.Fatalf("no built-in %q", name)
			}
			if strings.Join(ff.Keys(), ";") != strings.Join(bf.Keys(), ";") {
				t.Fatalf("keys %v, built-in %v", ff.Keys(), bf.Keys())
			}
			matched := 0
			for _, r := range recs {
				ft, bt := ff.Match(r), bf.Match(r)
				if (ft == nil) != (bt == nil) {
					t.Fatalf("record %d: file template %v, built-in %v", r.Index, ft, bt)
				}
				if ft == nil {
					continue
				}
				matched++
				fr, br := ft.Render(r.Fields, bf.Response), bt.Render(r.Fields, bf.Response)
				if fr.Text != br.Text || fr.ResponseAt != br.ResponseAt {
					t.Fatalf("record %d:\nfile     %q (response at %d)\nbuilt-in %q (response at %d)", r.Index, fr.Text, fr.ResponseAt, br.Text, br.ResponseAt)
				}
				if br.ResponseAt < 0 || !strings.HasPrefix(br.Text[br.ResponseAt:], r.Fields[bf.Response]) {
					t.Fatalf("record %d: response offset %d does not start the %s value", r.Index, br.ResponseAt, bf.Response)
				}
			}
			if matched < 10 {
				t.Errorf("only %d records matched", matched)
			}
		})
	}
}

func TestAlpacaTemplateChoice(t *testing.T) {
	recs, err := dataset.ReadAll(sharedData(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpaca", "alpaca-chatbot", "chatml"} {
		f, _ := dataset.Builtin(name)
		count := map[string]int{}
		for _, r := range recs {
			tp := f.Match(r)
			if tp == nil {
				if r.Index != 2335 && r.Index != 4658 {
					t.Errorf("%s: record %d unmatched: %v", name, r.Index, r.Set())
				}
				count[""]++
				continue
			}
			count[tp.Key]++
		}
		// Two records (2335 and 4658) have an empty output: no template
		// matches them, as in the seed.
		if count["instruction,input,output"] != 1943 || count["instruction,output"] != 3055 || count[""] != 2 {
			t.Errorf("%s: template use %v, want 1943 with input, 3055 without, 2 unmatched", name, count)
		}
	}
}

func TestRenderOnePass(t *testing.T) {
	f, err := dataset.ParseFormat("f.json", []byte(`{"a,b": "[%a%|%b%|%c%|%x%|100%|%%a%]"}`))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"a": "%b% & %a%", "b": "B", "c": ""}
	r := f.Match(dataset.Record{Fields: fields}).Render(fields, "b")
	// %c% is an (empty) field of the record, so it is substituted like the
	// seed does; %x% is not a field and stays; values are not rescanned.
	want := "[%b% & %a%|B||%x%|100%|%%b% & %a%]"
	if r.Text != want {
		t.Errorf("Render = %q, want %q", r.Text, want)
	}
	if r.ResponseAt != strings.Index(want, "|B|")+1 {
		t.Errorf("ResponseAt = %d", r.ResponseAt)
	}
	var lit []string
	for _, l := range r.Literal {
		lit = append(lit, r.Text[l[0]:l[1]])
	}
	if got := strings.Join(lit, "¦"); got != "[¦|¦|¦|%x%|100%|%¦]" {
		t.Errorf("literal parts %q", got)
	}
}

func TestParseFormatErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // "line:col code" each
	}{
		{"syntax", "{\n  \"a,b\": \"x\"\n  \"c\": \"y\"\n}", []string{"3:3 format-syntax"}},
		{"not object", `["a"]`, []string{"1:1 format-syntax"}},
		{"truncated", "{\"a\": \"x\",\n", []string{"2:1 format-syntax"}},
		{"types and keys", "{\n \"a\": 1,\n \"a,,b\": \"x\",\n \"b, c ,b\": \"y\",\n \"q,r\": \"ok\",\n \"r, q\": \"dup\"\n}",
			[]string{"2:2 format-type", "3:2 format-key", "4:2 format-key", "6:2 format-duplicate"}},
		{"empty", "{}", []string{"1:1 format-empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dataset.ParseFormat("fmt.json", []byte(tc.body))
			if err == nil {
				t.Fatal("no error")
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var d diag.Diagnostic
				if errors.As(e, &d) {
					if d.Range.File != "fmt.json" {
						t.Errorf("diagnostic names file %q", d.Range.File)
					}
					got = append(got, fmt.Sprintf("%s %s", d.Range.Start, d.Code))
				}
			}
			if strings.Join(got, ";") != strings.Join(tc.want, ";") {
				t.Errorf("got %v, want %v\n%v", got, tc.want, err)
			}
		})
	}
}

func TestParseFormatTrimsAndBOM(t *testing.T) {
	f, err := dataset.ParseFormat("f.json", []byte("\ufeff{\"output , instruction\": \"%instruction% -> %output%\"}"))
	if err != nil {
		t.Fatal(err)
	}
	r := dataset.Record{Fields: map[string]string{"instruction": "i", "output": "o", "input": "  "}}
	tp := f.Match(r)
	if tp == nil || tp.Render(r.Fields, "output").Text != "i -> o" {
		t.Errorf("template %v", tp)
	}
}

func TestLoadFormat(t *testing.T) {
	if _, err := dataset.LoadFormat("alpaca"); err != nil {
		t.Error(err)
	}
	_, err := dataset.LoadFormat("alpacca")
	if err == nil || !strings.Contains(err.Error(), "alpaca, alpaca-chatbot, chatml, llama2-chat, vicuna") {
		t.Errorf("err = %v", err)
	}
	p := filepath.Join(t.TempDir(), "mine.json")
	os.WriteFile(p, []byte(`{"q,a": "Q: %q%\nA: %a%"}`), 0o644)
	f, err := dataset.LoadFormat(p)
	if err != nil || f.Name != p || f.Response != "output" {
		t.Errorf("LoadFormat(file) = %+v, %v", f, err)
	}
}

// TestGoldenAlpacaRendered records how the first records of alpaca_5000
// look in every built-in format, the response part between « and ».
func TestGoldenAlpacaRendered(t *testing.T) {
	recs, err := dataset.ReadAll(sharedData(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	pick := []dataset.Record{recs[0], recs[1]}
	for _, r := range recs {
		if len(r.Set()) == 2 {
			pick = append(pick, r) // the first record without an input
			break
		}
	}
	pick = append(pick, recs[2335]) // empty output: unmatched
	var b strings.Builder
	for _, name := range dataset.BuiltinNames() {
		f, _ := dataset.Builtin(name)
		for _, r := range pick {
			tp := f.Match(r)
			if tp == nil {
				fmt.Fprintf(&b, "=== %s record %d: unmatched {%s}\n", name, r.Index, strings.Join(r.Set(), ","))
				continue
			}
			out := tp.Render(r.Fields, f.Response)
			fmt.Fprintf(&b, "=== %s record %d template {%s}\n%s«%s»\n", name, r.Index, tp.Key, out.Text[:out.ResponseAt], out.Text[out.ResponseAt:])
		}
	}
	golden(t, "testdata/alpaca-rendered.golden", b.String())
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
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, firstDiff(string(want), got))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, w, g)
		}
	}
	return ""
}

func FuzzParseFormat(f *testing.F) {
	f.Add([]byte(`{"instruction,output": "U: %instruction%\nA: %output%"}`))
	f.Add([]byte("\ufeff{\"a, b\": \"%a%%b%\", \"b,a\": 1}"))
	f.Add([]byte(`{"a": "x"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := dataset.ParseFormat("f.json", data)
		if err != nil {
			return
		}
		for _, tp := range fm.Templates {
			fields := map[string]string{}
			for _, k := range tp.Fields {
				fields[k] = "%" + k + "%v"
			}
			r := tp.Render(fields, tp.Fields[0])
			if fm.Match(dataset.Record{Fields: fields}) != tp {
				t.Fatalf("template %q does not match its own field set", tp.Key)
			}
			if r.ResponseAt > len(r.Text) {
				t.Fatalf("response offset %d past the text", r.ResponseAt)
			}
		}
	})
}
