package recipe

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/diag"
)

// lintArgs reads the overrides a golden case asks for, from a first line
// like "# lint-args: --set a=b --set c=d".
func lintArgs(src []byte) []string {
	first, _, _ := strings.Cut(string(src), "\n")
	rest, ok := strings.CutPrefix(first, "# lint-args:")
	if !ok {
		return nil
	}
	var sets []string
	f := strings.Fields(rest)
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == "--set" {
			sets = append(sets, f[i+1])
		}
	}
	return sets
}

// TestLintGolden loads every testdata/lint/*.yaml and compares the text and
// JSON renderings with NAME.txt and NAME.json (rewrite them with -update).
// ok.yaml must be clean, warn-*.yaml must have only warnings, every other
// case must have errors.
func TestLintGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "lint", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	docs, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "lint.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sets := lintArgs(src)
			_, ds := Load(path, sets)
			var txt, js bytes.Buffer
			if err := (diag.Text{Sources: map[string][]byte{SetFile: SetSource(sets)}}).Write(&txt, ds); err != nil {
				t.Fatal(err)
			}
			if err := diag.WriteJSON(&js, ds); err != nil {
				t.Fatal(err)
			}
			var doc diag.Document
			if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
				t.Fatalf("JSON output does not parse: %v", err)
			}
			if doc.Version != diag.JSONVersion || doc.Errors != ds.Count(diag.Error) || len(doc.Diagnostics) != len(ds) {
				t.Errorf("JSON document header wrong: %+v", doc)
			}
			for _, d := range ds {
				if !bytes.Contains(docs, []byte("| `"+d.Code+"` |")) {
					t.Errorf("code %q is not documented in docs/lint.md", d.Code)
				}
			}
			if name == "ok" && len(ds) != 0 {
				t.Errorf("valid recipe has diagnostics:\n%s", txt.String())
			}
			switch {
			case strings.HasPrefix(name, "warn-"):
				if ds.HasErrors() || ds.Count(diag.Warning) == 0 {
					t.Errorf("%s: want warnings and no errors:\n%s", name, txt.String())
				}
			case name != "ok" && !ds.HasErrors():
				t.Errorf("%s: expected errors, got none", name)
			}
			golden(t, path[:len(path)-len(".yaml")]+".txt", txt.Bytes())
			golden(t, path[:len(path)-len(".yaml")]+".json", js.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := writeAtomic(path, got); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
