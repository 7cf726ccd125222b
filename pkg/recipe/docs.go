package recipe

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// referenceDoc renders docs/recipe.md from the generated schema (keys,
// types, defaults, bounds, descriptions) and the expression environments.
func referenceDoc() []byte {
	var b strings.Builder
	sch := generateSchema()
	defs := sch["$defs"].(map[string]any)
	b.WriteString(`# Recipe reference

<!-- Generated from schemas/recipe.schema.json and pkg/recipe by
     go test ./pkg/recipe -run TestReferenceDoc -update. Do not edit. -->

A recipe is a YAML file; ` + "`lora lint`" + ` checks it, ` + "`lora plan`" + ` shows what will run,
` + "`lora run`" + ` runs it. Editors validate and complete it through the modeline
` + "`# yaml-language-server: $schema=../schemas/recipe.schema.json`" + `.
Complete, commented examples: ` + "`recipes/alpaca-chat.yaml`" + ` (instructions),
` + "`recipes/raw-text.yaml`" + ` (raw text), ` + "`recipes/qlora-4bit.yaml`" + ` (a quantized base) and
` + "`recipes/continue.yaml`" + ` (continuing an adapter). ` + "`docs/lint.md`" + ` lists every check.

Rules that hold everywhere:

- ` + "`version: 1`" + ` is required and read first; an unknown version is reported alone.
- Unknown keys, duplicate keys, wrong types, values out of range and unknown
  enum values are errors, all reported at once with ` + "`file:line:col`" + `.
- Relative paths are relative to the recipe file's directory.
- Remote sources (` + "`https://`, `git::`, `s3::`" + `...) must be pinned by ` + "`sha256`" + ` (64
  lowercase hex digits); local files must exist.
- ` + "`--set key.path=value`" + ` overrides a value before checking (the value is read
  as YAML: ` + "`--set stages.train.train.lora.rank=16`" + `); it is recorded in the lock file.
- Stage names: letters, digits, ` + "`_`" + ` and ` + "`-`" + `, starting with a letter or ` + "`_`" + `.

## Stages and their inputs

Each stage is ` + "`name: {<kind>: {...}, needs: [...], when: ...}`" + ` with exactly one kind.
A stage runs after every stage in its ` + "`needs`" + ` and every stage its keys name:

| kind | reads | key naming it | default when absent |
|---|---|---|---|
| fetch | a source (path or URL) | - | - |
| format | a **fetch** stage (records, JSON or JSONL) | ` + "`input`" + ` | required |
| chunk | a **fetch** stage (raw text) | ` + "`input`" + ` | required |
| train | a **format** or **chunk** stage (examples) | ` + "`input`" + ` | the single format/chunk stage in ` + "`needs`" + ` |
| train | an adapter: a **train** stage or a directory | ` + "`init_adapter`" + ` | fresh weights |
| evaluate | a **train** stage (its adapter) | ` + "`adapter`" + ` | the single train stage in ` + "`needs`" + ` |
| evaluate | a **format**/**chunk** stage's held-out examples | ` + "`heldout`" + ` | none |
| evaluate | a **fetch** stage or a text file | ` + "`perplexity.text`" + ` | none |

Training directly on a fetch stage is an error: a file is not yet examples
(tokens and labels); put a format stage (records) or a chunk stage (raw text)
in between. Cycles are errors that name the cycle.

`)
	b.WriteString("## Top level\n\n")
	table(&b, sch)
	b.WriteString("\n### model\n\n")
	table(&b, prop(sch, "model"))
	stage := defs["stage"].(map[string]any)
	b.WriteString("\n## Stage\n\n")
	b.WriteString(stage["description"].(string) + "\n\n")
	table(&b, stage)
	for _, kind := range Kinds {
		k := prop(stage, kind)
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", kind, k["description"])
		table(&b, k)
		var subs []string
		for name, p := range k["properties"].(map[string]any) {
			if pm := p.(map[string]any); pm["properties"] != nil {
				subs = append(subs, name)
			}
		}
		sort.Strings(subs)
		for _, name := range subs {
			fmt.Fprintf(&b, "\n### %s.%s\n\n", kind, name)
			table(&b, prop(k, name))
		}
	}
	b.WriteString("\n## Expressions\n\n")
	b.WriteString("`stop_when`, `gate` and `when` are [expr](https://expr-lang.org) expressions,\n" +
		"compiled at lint time: an unknown name, a non-boolean result or a syntax error is\n" +
		"reported at its line and column. `now()`, `date()` and `timezone()` are disabled\n" +
		"so that a gate gives the same answer on every rerun.\n")
	envDoc(&b, "train.stop_when", "checked after every optimizer step; true stops training (the adapter is kept)", reflect.TypeFor[TrainEnv]())
	envDoc(&b, "evaluate.gate", "checked after evaluation; false fails the run with exit code 3", reflect.TypeFor[EvalEnv]())
	b.WriteString("\n### when\n\nChecked before the stage runs; false skips it (a skipped stage counts as done).\n" +
		"`stages.<name>` is one of the stages this stage depends on (directly or not);\n" +
		"naming another stage is an error. `params` holds the recipe's name, seed, device\n" +
		"and `set` (the `--set` overrides as a map from path to value text).\n\n" +
		"Example: `when: stages.eval.perplexity > 20 && params.device != \"cpu\"`\n")
	envDoc(&b, "stages.<name>", "", reflect.TypeFor[StageMetrics]())
	envDoc(&b, "params", "", reflect.TypeFor[Params]())
	return []byte(b.String())
}

func prop(s map[string]any, name string) map[string]any {
	return s["properties"].(map[string]any)[name].(map[string]any)
}

func table(b *strings.Builder, s map[string]any) {
	props := s["properties"].(map[string]any)
	req := map[string]bool{}
	if r, ok := s["required"].([]string); ok {
		for _, k := range r {
			req[k] = true
		}
	}
	// keys in declaration order: the schema map is unordered, the Go type is not
	var keys []string
	for k := range props {
		keys = append(keys, k)
	}
	order := declOrder()
	sort.SliceStable(keys, func(i, j int) bool { return order[keys[i]] < order[keys[j]] })
	b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
	for _, k := range keys {
		p := props[k].(map[string]any)
		name := "`" + k + "`"
		if req[k] {
			name += " (required)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, typeText(p), defText(p), cell(p["description"]))
	}
}

// declOrder ranks keys by where they first appear in the Go types.
func declOrder() map[string]int {
	order := map[string]int{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for _, f := range fieldsOf(t) {
			if _, ok := order[f.key]; !ok {
				order[f.key] = len(order)
			}
			ft := f.typ
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft == stagesType {
				walk(reflect.TypeFor[Stage]())
			} else if ft.Kind() == reflect.Struct && ft != exprType {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Recipe]())
	return order
}

func typeText(p map[string]any) string {
	var parts []string
	if t, ok := p["type"].(string); ok {
		switch t {
		case "array":
			if it, ok := p["items"].(map[string]any); ok {
				t = "list of " + typeText(it)
			}
		case "object":
			t = "mapping"
		}
		parts = append(parts, t)
	}
	if e, ok := p["enum"].([]any); ok {
		var vs []string
		for _, v := range e {
			vs = append(vs, fmt.Sprint(v))
		}
		parts = append(parts, "one of "+strings.Join(vs, ", "))
	}
	if a, ok := p["anyOf"].([]any); ok {
		var alts []string
		for _, x := range a {
			xm := x.(map[string]any)
			if c, ok := xm["const"]; ok {
				alts = append(alts, fmt.Sprintf("%q", c))
			} else {
				alts = append(alts, typeText(xm))
			}
		}
		parts = append(parts, strings.Join(alts, " or "))
	}
	if pat, ok := p["pattern"].(string); ok {
		parts = append(parts, "matching `"+pat+"`")
	}
	for _, kv := range [][2]string{{"minimum", ">="}, {"exclusiveMinimum", ">"}, {"maximum", "<="}, {"exclusiveMaximum", "<"}} {
		if v, ok := p[kv[0]]; ok {
			parts = append(parts, fmt.Sprintf("%s %v", kv[1], v))
		}
	}
	return cell(strings.Join(parts, ", "))
}

func defText(p map[string]any) string {
	d, ok := p["default"]
	if !ok {
		return ""
	}
	b, _ := json.Marshal(d)
	return "`" + strings.ReplaceAll(string(b), "|", "\\|") + "`"
}

func cell(v any) string {
	s, _ := v.(string)
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

func envDoc(b *strings.Builder, title, what string, t reflect.Type) {
	fmt.Fprintf(b, "\n### %s\n\n", title)
	if what != "" {
		b.WriteString(strings.ToUpper(what[:1]) + what[1:] + ".\n\n")
	}
	b.WriteString("| name | type | meaning |\n|---|---|---|\n")
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("expr")
		if name == "" {
			continue
		}
		typ := f.Type.Kind().String()
		switch f.Type.Kind() {
		case reflect.Float64:
			typ = "float"
		case reflect.Map:
			typ = "map"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", name, typ, f.Tag.Get("doc"))
	}
}
