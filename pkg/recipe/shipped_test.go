package recipe

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/diag"
)

// TestShippedRecipes lints every recipe in recipes/: no errors, and no
// warnings except continue.yaml's (its adapter comes from an earlier run).
func TestShippedRecipes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "recipes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped recipes: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(src, []byte("# yaml-language-server: $schema=../schemas/recipe.schema.json\n")) {
				t.Error("missing the yaml-language-server modeline on line 1")
			}
			r, ds := Load(f, nil)
			var buf bytes.Buffer
			diag.Text{}.Write(&buf, ds)
			if ds.HasErrors() {
				t.Fatalf("shipped recipe has errors:\n%s", buf.String())
			}
			if w := ds.Count(diag.Warning); w > 0 && filepath.Base(f) != "continue.yaml" {
				t.Errorf("shipped recipe has warnings:\n%s", buf.String())
			}
			if _, err := r.Order(); err != nil {
				t.Error(err)
			}
			if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); r.Name != want {
				t.Errorf("name %q, want the file name %q", r.Name, want)
			}
		})
	}
}
