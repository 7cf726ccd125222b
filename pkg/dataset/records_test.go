package dataset_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/diag"
)

// sharedData returns ../shared/data seen from the repository root, or skips.
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

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlpaca5000Records(t *testing.T) {
	p := sharedData(t, "datasets/alpaca/alpaca_5000.json")
	recs, err := dataset.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5000 {
		t.Fatalf("%d records, want 5000", len(recs))
	}
	withInput := 0
	for i, r := range recs {
		if r.Index != i || len(r.Fields) != 3 {
			t.Fatalf("record %d: index %d, fields %v", i, r.Index, r.Fields)
		}
		if strings.TrimSpace(r.Fields["input"]) != "" {
			withInput++
		}
	}
	if withInput != 1943 {
		t.Errorf("%d records with a non-empty input, want 1943", withInput)
	}
	if recs[1].Fields["instruction"] != "Arrange the following musical notes" || recs[1].Fields["output"] != "E, G, B" {
		t.Errorf("record 1 = %v", recs[1].Fields)
	}
}

func TestSeedTasksNestedFieldError(t *testing.T) {
	p := sharedData(t, "datasets/alpaca/seed_tasks.jsonl")
	err := dataset.Read(p, func(dataset.Record) error { return nil })
	var d diag.Diagnostic
	if !errors.As(err, &d) {
		t.Fatalf("err = %v, want a diagnostic", err)
	}
	// Line 1: {"id": "...", "name": "...", "instruction": "...", "instances": [...
	line1, _, _ := strings.Cut(readString(t, p), "\n")
	wantCol := len([]rune(line1[:strings.Index(line1, `"instances"`)])) + 1
	if d.Code != "field-type" || d.Range.Start != (diag.Pos{Line: 1, Col: wantCol}) ||
		!strings.Contains(d.Message, `record 0: field "instances" is an array`) || d.Hint == "" {
		t.Errorf("diagnostic = %+v (want field-type at 1:%d)", d, wantCol)
	}
	if !strings.HasPrefix(err.Error(), p+":1:") {
		t.Errorf("error %q does not start with the file and line", err)
	}
}

func readString(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		line, col  int
		code, msg  string
	}{
		{"missing comma", "[\n  {\"a\": \"x\"},\n  {\"a\": \"y\" \"b\": \"z\"}\n]", 3, 13, "json-syntax", "invalid character '\"' after object key:value pair"},
		{"truncated array", "[{\"a\": \"x\"},\n {\"a\": ", 2, 8, "json-syntax", "ends in the middle"},
		{"jsonl bad line", "{\"a\": \"x\"}\n{\"a\": tru}\n", 2, 10, "json-syntax", "invalid character"},
		{"number record", "[{\"a\": \"x\"}, 42]", 1, 14, "record-type", "record 1 is a number, not an object"},
		{"number field", "{\"a\": \"x\"}\n{\"b\": \"y\",\n \"id\": 7}", 3, 2, "field-type", `record 1: field "id" is a number`},
		{"object field", `{"a": {"b": "c"}}`, 1, 2, "field-type", `field "a" is an object`},
		{"bool field", `[{"ok": true}]`, 1, 3, "field-type", `field "ok" is a boolean`},
		{"duplicate field", `{"a": "x", "a": "y"}`, 1, 12, "duplicate-field", `has field "a" twice`},
		{"after array", `[{"a": "x"}] {"b": "y"}`, 1, 14, "json-syntax", "after the closing ]"},
		{"missing comma between records", "[{\"a\": \"x\"}\n {\"a\": \"y\"}]", 2, 2, "json-syntax", "expected comma"},
		{"bad value in array", "[{\"a\": \"x\"}, \n  nul]", 2, 6, "json-syntax", "invalid character ']'"},
		{"empty", "  \n ", 1, 1, "empty-dataset", "empty"},
		{"unicode column", "{\"é\": \"ü\", \"n\": 1}", 1, 12, "field-type", `field "n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "data.json", tc.body)
			err := dataset.Read(p, func(dataset.Record) error { return nil })
			var d diag.Diagnostic
			if !errors.As(err, &d) {
				t.Fatalf("err = %v, want a diagnostic", err)
			}
			if d.Code != tc.code || d.Range.File != p || d.Range.Start != (diag.Pos{Line: tc.line, Col: tc.col}) || !strings.Contains(d.Message, tc.msg) {
				t.Errorf("got %s [%s], want %d:%d [%s] containing %q", d.Error(), d.Code, tc.line, tc.col, tc.code, tc.msg)
			}
		})
	}
}

func TestReadForms(t *testing.T) {
	want := []map[string]string{{"a": "x", "b": ""}, {"a": "y"}}
	for _, tc := range []struct{ name, body string }{
		{"array", `[{"a": "x", "b": ""}, {"a": "y", "c": null}]`},
		{"array with BOM", "\ufeff[{\"a\": \"x\", \"b\": \"\"},\n{\"a\": \"y\"}]\n"},
		{"jsonl", "{\"a\": \"x\", \"b\": \"\"}\n\n{\"a\": \"y\"}\n"},
		{"jsonl crlf", "{\"a\": \"x\", \"b\": \"\"}\r\n{\"a\": \"y\", \"c\": null}\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := dataset.ReadAll(writeFile(t, "d.json", tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(want) {
				t.Fatalf("%d records", len(recs))
			}
			for i, r := range recs {
				if len(r.Fields) != len(want[i]) {
					t.Errorf("record %d = %v, want %v", i, r.Fields, want[i])
				}
				for k, v := range want[i] {
					if r.Fields[k] != v {
						t.Errorf("record %d = %v, want %v", i, r.Fields, want[i])
					}
				}
			}
			if got := strings.Join(recs[0].Set(), ","); got != "a" {
				t.Errorf("set of record 0 = %q, want a (empty fields are absent)", got)
			}
		})
	}
}

func TestReadStopsOnCallbackError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	err := dataset.Read(writeFile(t, "d.jsonl", "{\"a\":\"1\"}\n{\"a\":\"2\"}\n{\"a\":\"3\"}\n"), func(dataset.Record) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Errorf("err %v after %d records", err, n)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`[{"a": "x"}, {"b": null}]`))
	f.Add([]byte("{\"a\": \"x\"}\n{\"a\": [1]}"))
	f.Add([]byte("\ufeff[{\"é\": 1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f.json")
		os.WriteFile(p, data, 0o644)
		dataset.Read(p, func(r dataset.Record) error {
			if r.Fields == nil {
				t.Fatal("nil fields")
			}
			return nil
		})
	})
}
