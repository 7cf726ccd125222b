package recipe

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files, the schema and the generated docs")

// repoRoot walks up from the package directory to the directory with go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestSchemaFile keeps schemas/recipe.schema.json equal to the schema
// generated from the Go types (regenerate with -update).
func TestSchemaFile(t *testing.T) {
	path := filepath.Join(repoRoot(t), "schemas", "recipe.schema.json")
	want := marshalSchema()
	if *update {
		if err := writeAtomic(path, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the Go types; run: go test ./pkg/recipe -run TestSchemaFile -update", path)
	}
}

// TestSchemaMatchesTypes walks the Go types (by yaml tags) and the schema
// file side by side: every field must be a property and every property a
// field, with the same enums and required keys, and every property must
// have a description.
func TestSchemaMatchesTypes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "schemas", "recipe.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	var walk func(path string, typ reflect.Type, s map[string]any)
	walk = func(path string, typ reflect.Type, s map[string]any) {
		if ref, ok := s["$ref"].(string); ok {
			s, _ = defs[filepath.Base(ref)].(map[string]any)
		}
		props, _ := s["properties"].(map[string]any)
		if props == nil {
			t.Errorf("%s: schema has no properties for Go type %s", path, typ)
			return
		}
		if s["additionalProperties"] != false {
			t.Errorf("%s: schema allows unknown keys; the decoder does not", path)
		}
		var goKeys, goReq []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("yaml")
			if key == "" || key == "-" {
				continue
			}
			goKeys = append(goKeys, key)
			if f.Tag.Get("required") == "true" {
				goReq = append(goReq, key)
			}
			p, ok := props[key].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: Go field %s has no schema property", path, key, f.Name)
				continue
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s.%s: schema property has no description", path, key)
			}
			var want []string
			if e := f.Tag.Get("enum"); e != "" {
				want = splitComma(e)
			}
			var got []string
			if e, ok := p["enum"].([]any); ok {
				for _, v := range e {
					got = append(got, v.(string))
				}
			}
			if !slices.Equal(want, got) {
				t.Errorf("%s.%s: enum differs: Go %v, schema %v", path, key, want, got)
			}
			if f.Type == targetsType {
				// anyOf: "all-linear" or a list of layer names
				alts, _ := p["anyOf"].([]any)
				var names []string
				var hasAll bool
				for _, a := range alts {
					am := a.(map[string]any)
					hasAll = hasAll || am["const"] == "all-linear"
					if it, ok := am["items"].(map[string]any); ok {
						for _, v := range it["enum"].([]any) {
							names = append(names, v.(string))
						}
					}
				}
				var want []string
				for k := range targetNames {
					want = append(want, k)
				}
				sort.Strings(want)
				sort.Strings(names)
				if !hasAll || !slices.Equal(names, want) {
					t.Errorf("%s.%s: targets differ: Go %v + all-linear, schema %v (all-linear %v)", path, key, want, names, hasAll)
				}
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == stagesType:
				walk(path+"."+key+".*", reflect.TypeFor[Stage](), p["additionalProperties"].(map[string]any))
			case ft.Kind() == reflect.Struct && ft != exprType:
				walk(path+"."+key, ft, p)
			}
		}
		var schemaKeys []string
		for k := range props {
			schemaKeys = append(schemaKeys, k)
			if !slices.Contains(goKeys, k) {
				t.Errorf("%s.%s: schema property has no Go field", path, k)
			}
		}
		var req []string
		if r, ok := s["required"].([]any); ok {
			for _, v := range r {
				req = append(req, v.(string))
			}
		}
		sort.Strings(req)
		sort.Strings(goReq)
		if !slices.Equal(req, goReq) {
			t.Errorf("%s: required keys differ: Go %v, schema %v", path, goReq, req)
		}
	}
	walk("recipe", reflect.TypeFor[Recipe](), root)
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// TestReferenceDoc keeps docs/recipe.md equal to what the schema and the
// expression environments generate (regenerate with -update).
func TestReferenceDoc(t *testing.T) {
	path := filepath.Join(repoRoot(t), "docs", "recipe.md")
	want := referenceDoc()
	if *update {
		if err := writeAtomic(path, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/recipe -run TestReferenceDoc -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date; run: go test ./pkg/recipe -run TestReferenceDoc -update", path)
	}
}

// TestSchemaPositions validates a tree through the JSON Schema alone and
// checks each failure lands on the YAML line:col of what it is about.
func TestSchemaPositions(t *testing.T) {
	src := `version: 1
colour: blue
model:
  source: https://example.com/m.gguf
  quantize: q3
stages:
  data:
    fetch: {source: 42}
  train:
    train:
      lora: {rank: 0, targets: [q, nope]}
      optimizer: {scheduler: cosine, betas: [0.9]}
`
	root, ds := parseYAML("s.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	type want struct {
		code      string
		line, col int
	}
	wants := []want{
		{"unknown-key", 2, 1},    // colour
		{"bad-enum", 5, 13},      // q3
		{"wrong-type", 8, 21},    // 42
		{"out-of-range", 11, 20}, // rank 0
		{"schema", 12, 45},       // betas: minItems
	}
	got := map[want]bool{}
	var all []string
	for _, sd := range validateSchema(root) {
		got[want{sd.d.Code, sd.d.Range.Start.Line, sd.d.Range.Start.Col}] = true
		all = append(all, sd.d.Error())
	}
	for _, w := range wants {
		if !got[w] {
			t.Errorf("no %s at %d:%d; schema reported:\n%s", w.code, w.line, w.col, strings.Join(all, "\n"))
		}
	}
}
