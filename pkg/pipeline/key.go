package pipeline

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/lora-dev/lora/pkg/store"
)

// Material is everything a stage key hashes: the key is the sha256 of its
// JSON encoding (struct fields in order, map keys sorted). A change to any
// of it reruns the stage; Diff says which part changed.
type Material struct {
	Kind       string            `json:"kind"`
	Definition map[string]any    `json:"definition"`        // the resolved stage: needs, when and the kind's block
	Content    string            `json:"content,omitempty"` // fetch: sha256 of what was fetched
	Model      *ModelRef         `json:"model,omitempty"`
	Seed       *uint64           `json:"seed,omitempty"`
	Device     string            `json:"device,omitempty"` // device kind: cpu, vulkan
	Shaders    string            `json:"shaders,omitempty"`
	Inputs     map[string]string `json:"inputs,omitempty"` // input stage name → its key
	Files      map[string]string `json:"files,omitempty"`  // local file or directory → content sha256
	Tool       string            `json:"tool"`
}

// ModelRef identifies the base model by content.
type ModelRef struct {
	SHA256   string `json:"sha256"`
	Quantize string `json:"quantize,omitempty"` // stages that compute with the weights
}

// Key returns the stage key: sha256 of the material's JSON.
func (m *Material) Key() string {
	b, err := json.Marshal(m)
	if err != nil {
		// Material holds only strings, numbers, maps and slices.
		panic("pipeline: material does not encode: " + err.Error())
	}
	return store.HashBytes(b)
}

// Canonical turns a recipe value into plain JSON-like data keyed by its YAML
// names, dropping positions and other fields that are not part of the
// recipe's meaning (yaml:"-"). Pointers that are nil are omitted.
func Canonical(v any) any {
	return canon(reflect.ValueOf(v))
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

func canon(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(marshalerType) && v.Kind() != reflect.Pointer && v.Kind() != reflect.Interface {
		out, err := jsonValue(v.Interface())
		if err == nil {
			return out
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return canon(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			x := canon(v.Field(i))
			if x == nil {
				continue
			}
			m[name] = x
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = canon(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[fmt.Sprint(k.Interface())] = canon(v.MapIndex(k))
		}
		return m
	case reflect.Bool:
		return v.Bool()
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint())
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return fmt.Sprint(v.Interface())
}

// Diff lists, in words, what differs between an earlier material and now:
// "definition: train.lora.rank 8 → 16", "input prompts changed",
// "tool version 0.1.0 → 0.2.0".
func Diff(old, now *Material) []string {
	var out []string
	if old.Kind != now.Kind {
		out = append(out, fmt.Sprintf("kind %s → %s", old.Kind, now.Kind))
	}
	var defs []string
	diffValue(&defs, "", old.Definition, now.Definition)
	for _, d := range defs {
		out = append(out, "definition changed: "+d)
	}
	if old.Content != now.Content {
		out = append(out, fmt.Sprintf("fetched content changed (sha256 %s → %s)", short(old.Content), short(now.Content)))
	}
	switch {
	case (old.Model == nil) != (now.Model == nil):
		out = append(out, "model use changed")
	case old.Model != nil && old.Model.SHA256 != now.Model.SHA256:
		out = append(out, fmt.Sprintf("model changed (sha256 %s → %s)", short(old.Model.SHA256), short(now.Model.SHA256)))
	case old.Model != nil && old.Model.Quantize != now.Model.Quantize:
		out = append(out, fmt.Sprintf("model quantize %s → %s", old.Model.Quantize, now.Model.Quantize))
	}
	if (old.Seed == nil) != (now.Seed == nil) || old.Seed != nil && *old.Seed != *now.Seed {
		out = append(out, fmt.Sprintf("seed %s → %s", seedStr(old.Seed), seedStr(now.Seed)))
	}
	if old.Device != now.Device {
		out = append(out, fmt.Sprintf("device %s → %s", orNone(old.Device), orNone(now.Device)))
	}
	if old.Shaders != now.Shaders {
		out = append(out, "shader set changed")
	}
	for _, n := range sortedKeys(old.Inputs, now.Inputs) {
		o, ok1 := old.Inputs[n]
		c, ok2 := now.Inputs[n]
		switch {
		case !ok1:
			out = append(out, fmt.Sprintf("new input %s", n))
		case !ok2:
			out = append(out, fmt.Sprintf("input %s removed", n))
		case o != c:
			out = append(out, fmt.Sprintf("input %s changed", n))
		}
	}
	for _, n := range sortedKeys(old.Files, now.Files) {
		o, ok1 := old.Files[n]
		c, ok2 := now.Files[n]
		switch {
		case !ok1:
			out = append(out, fmt.Sprintf("new file %s", n))
		case !ok2:
			out = append(out, fmt.Sprintf("file %s no longer used", n))
		case o != c:
			out = append(out, fmt.Sprintf("file %s changed", n))
		}
	}
	if old.Tool != now.Tool {
		out = append(out, fmt.Sprintf("tool version %s → %s", old.Tool, now.Tool))
	}
	return out
}

func diffValue(out *[]string, path string, a, b any) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for _, k := range sortedKeys(am, bm) {
			diffValue(out, joinPath(path, k), am[k], bm[k])
		}
		return
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) == string(jb) {
		return
	}
	switch {
	case a == nil:
		*out = append(*out, fmt.Sprintf("%s set to %s", path, jb))
	case b == nil:
		*out = append(*out, fmt.Sprintf("%s removed (was %s)", path, ja))
	default:
		*out = append(*out, fmt.Sprintf("%s %s → %s", path, ja, jb))
	}
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func sortedKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for k := range a {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for k := range b {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "none"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func seedStr(p *uint64) string {
	if p == nil {
		return "unused"
	}
	return fmt.Sprint(*p)
}
