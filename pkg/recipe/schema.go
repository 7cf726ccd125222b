package recipe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// generateSchema builds the recipe JSON Schema from the Go types and their
// tags, so that the two cannot drift (a test compares it with the file).
func generateSchema() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Recipe]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = schemas.RecipeID
	root["title"] = "lora recipe"
	root["description"] = "A lora training recipe: a versioned YAML file whose named stages fetch, format, chunk, train and evaluate. See docs/recipe.md."
	root["$defs"] = g.defs
	return root
}

type schemaGen struct {
	defs map[string]any
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var req []string
	var order []string
	for _, f := range fieldsOf(t) {
		props[f.key] = g.fieldSchema(&f)
		order = append(order, f.key)
		if f.required {
			req = append(req, f.key)
		}
	}
	o := map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties":           props,
	}
	if len(req) > 0 {
		o["required"] = req
	}
	return o
}

func (g *schemaGen) fieldSchema(f *field) map[string]any {
	s := g.typeSchema(f.typ, f)
	if f.doc != "" {
		s["description"] = f.doc
	}
	if f.hasDef {
		s["default"] = toJSON(defaultNode(f.def))
	}
	return s
}

// typeSchema is the schema of a value of type t, with f's rules.
func (g *schemaGen) typeSchema(t reflect.Type, f *field) map[string]any {
	switch t {
	case stagesType:
		g.defs["stage"] = g.stage()
		return map[string]any{
			"type":          "object",
			"minProperties": 1,
			"propertyNames": map[string]any{"pattern": stageNameRe.String()},
			"additionalProperties": map[string]any{
				"$ref": "#/$defs/stage",
			},
		}
	case exprType:
		return map[string]any{"type": "string", "minLength": 1}
	case targetsType:
		names := slices.Sorted(mapKeys(targetNames))
		return map[string]any{"anyOf": []any{
			map[string]any{"const": "all-linear", "description": "Every linear layer: q, k, v, o, gate, up, down."},
			map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"enum": toAny(names), "description": "A linear layer: the short name or the Hugging Face module name."}, "description": "The layers to adapt."},
		}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeSchema(t.Elem(), f)
	case reflect.Struct:
		return g.object(t)
	case reflect.String:
		s := map[string]any{"type": "string"}
		if f.enum != nil {
			s["enum"] = toAny(f.enum)
		}
		if f.pattern != nil {
			s["pattern"] = f.pattern.String()
		}
		if f.examples != nil {
			s["examples"] = toAny(f.examples)
		}
		return s
	case reflect.Int, reflect.Int64:
		return bounds(map[string]any{"type": "integer"}, f)
	case reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float64:
		return bounds(map[string]any{"type": "number"}, f)
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Slice:
		item := g.typeSchema(t.Elem(), f)
		delete(item, "description")
		return map[string]any{"type": "array", "items": item}
	case reflect.Array:
		item := g.typeSchema(t.Elem(), f)
		return map[string]any{"type": "array", "items": item, "minItems": t.Len(), "maxItems": t.Len()}
	}
	panic("recipe: no schema for " + t.String())
}

func (g *schemaGen) stage() map[string]any {
	s := g.object(reflect.TypeFor[Stage]())
	s["description"] = "One stage: exactly one kind key (fetch, format, chunk, train, evaluate), plus optional needs and when."
	var one []any
	for _, k := range Kinds {
		one = append(one, map[string]any{"required": []any{k}})
	}
	s["oneOf"] = one
	return s
}

func bounds(s map[string]any, f *field) map[string]any {
	if f == nil {
		return s
	}
	set := func(k string, v *float64) {
		if v != nil {
			s[k] = *v
		}
	}
	set("minimum", f.min)
	set("maximum", f.max)
	set("exclusiveMinimum", f.xmin)
	set("exclusiveMaximum", f.xmax)
	return s
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// toJSON converts a node to the value encoding/json would decode it to
// (json.Number for numbers, for the validator).
func toJSON(n *node) any {
	switch n.kind {
	case nMap:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k.str] = toJSON(n.vals[i])
		}
		return m
	case nSeq:
		s := make([]any, len(n.seq))
		for i, v := range n.seq {
			s[i] = toJSON(v)
		}
		return s
	case nString:
		return n.str
	case nInt:
		return json.Number(strconv.FormatInt(n.i, 10))
	case nFloat:
		if math.IsNaN(n.f) || math.IsInf(n.f, 0) {
			return nil
		}
		return json.Number(strconv.FormatFloat(n.f, 'g', -1, 64))
	case nBool:
		return n.b
	}
	return nil
}

// marshalSchema renders the generated schema as the file's bytes.
func marshalSchema() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(generateSchema()); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

var (
	compiledOnce sync.Once
	compiled     *jsonschema.Schema
	compileErr   error
)

func recipeSchema() (*jsonschema.Schema, error) {
	compiledOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.Recipe))
		if err != nil {
			compileErr = fmt.Errorf("embedded recipe schema: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(schemas.RecipeID, doc); err != nil {
			compileErr = fmt.Errorf("embedded recipe schema: %w", err)
			return
		}
		compiled, compileErr = c.Compile(schemas.RecipeID)
	})
	return compiled, compileErr
}

// validateSchema checks the tree against schemas/recipe.schema.json and maps
// each failure to the YAML position of the instance it is about.
func validateSchema(root *node) []schemaDiag {
	sch, err := recipeSchema()
	if err != nil {
		return []schemaDiag{{diag.Errorf(diag.Range{File: root.file}, "internal", "%v", err), []*node{root}}}
	}
	err = sch.Validate(toJSON(root))
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return []schemaDiag{{diag.Errorf(root.rng(), "schema", "%v", err), []*node{root}}}
	}
	var ds []schemaDiag
	p := message.NewPrinter(language.English)
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		switch e.ErrorKind.(type) {
		case *kind.PropertyNames:
			return // stage names: the decoder reports them with a hint
		case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ds = append(ds, schemaDiags(root, e, p)...)
	}
	walk(ve)
	return ds
}

// schemaDiag is a schema finding and the nodes (value and key) it is about.
type schemaDiag struct {
	d  diag.Diagnostic
	at []*node
}

// reportedWithin reports whether ds has a diagnostic at any node of the
// subtrees at.
func reportedWithin(ds diag.List, at []*node) bool {
	pos := map[diag.Range]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil {
			return
		}
		pos[diag.Range{File: n.file, Start: n.pos}] = true
		for i := range n.keys {
			walk(n.keys[i])
			walk(n.vals[i])
		}
		for _, v := range n.seq {
			walk(v)
		}
	}
	for _, n := range at {
		walk(n)
	}
	for _, d := range ds {
		if pos[diag.Range{File: d.Range.File, Start: d.Range.Start}] {
			return true
		}
	}
	return false
}

func schemaDiags(root *node, e *jsonschema.ValidationError, p *message.Printer) []schemaDiag {
	val, key := locate(root, e.InstanceLocation)
	var out []schemaDiag
	for _, d := range schemaFindings(val, key, e, p) {
		out = append(out, schemaDiag{d, []*node{key, val}})
	}
	return out
}

func schemaFindings(val, key *node, e *jsonschema.ValidationError, p *message.Printer) diag.List {
	where := strings.Join(e.InstanceLocation, ".")
	msg := e.ErrorKind.LocalizedString(p)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		var ds diag.List
		for _, name := range k.Properties {
			kn := val.keyNode(name)
			if kn == nil {
				kn = key
			}
			ds.Add(diag.Errorf(kn.rng(), "unknown-key", "unknown key %q in %s (schema)", name, orTop(where)))
		}
		return ds
	case *kind.Required:
		return diag.List{diag.Errorf(key.rng(), "missing-key", "%s is missing required keys %s (schema)", orTop(where), strings.Join(k.Missing, ", "))}
	case *kind.OneOf, *kind.AnyOf:
		return diag.List{diag.Errorf(val.rng(), "schema", "%s: %s", orTop(where), msg)}
	case *kind.Type:
		return diag.List{diag.Errorf(val.rng(), "wrong-type", "%s: %s", orTop(where), msg)}
	case *kind.Enum, *kind.Const:
		return diag.List{diag.Errorf(val.rng(), "bad-enum", "%s: %s", orTop(where), msg)}
	case *kind.Minimum, *kind.Maximum, *kind.ExclusiveMinimum, *kind.ExclusiveMaximum:
		return diag.List{diag.Errorf(val.rng(), "out-of-range", "%s: %s", orTop(where), msg)}
	case *kind.Pattern:
		return diag.List{diag.Errorf(val.rng(), "bad-value", "%s: %s", orTop(where), msg)}
	}
	return diag.List{diag.Errorf(val.rng(), "schema", "%s: %s", orTop(where), msg)}
}

// locate finds the value node at a JSON instance location, and the node to
// blame for problems of the value as a whole: its key in the parent mapping
// (the root for the root).
func locate(root *node, loc []string) (val, key *node) {
	val, key = root, root
	for _, e := range loc {
		switch val.kind {
		case nMap:
			k := val.keyNode(e)
			v := val.get(e)
			if k == nil || v == nil {
				return val, key
			}
			val, key = v, k
		case nSeq:
			i, err := strconv.Atoi(e)
			if err != nil || i < 0 || i >= len(val.seq) {
				return val, key
			}
			val = val.seq[i]
			key = val
		default:
			return val, key
		}
	}
	return val, key
}
