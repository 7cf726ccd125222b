// Package recipe reads, checks and describes lora's YAML training recipes.
package recipe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/lora-dev/lora/pkg/diag"
)

// SetFile is the Range.File of diagnostics about --set overrides; line N is
// the Nth override (see SetSource).
const SetFile = "--set"

// maxRecipeBytes bounds a recipe file; real ones are a few kilobytes.
const maxRecipeBytes = 1 << 20

// SetSource returns the text diagnostics in SetFile point into: the
// overrides, one a line.
func SetSource(overrides []string) []byte { return []byte(strings.Join(overrides, "\n")) }

// Load reads, decodes and checks the recipe at path with --set overrides
// ("a.b=c") applied. It runs every check lint runs: schema, strict keys,
// types, ranges, the stage graph, expressions, local files and checksums
// syntax; no network, no GPU. The Recipe is nil only when the file cannot
// be read or parsed; use it only when the list has no errors.
func Load(path string, overrides []string) (*Recipe, diag.List) {
	if st, err := os.Stat(path); err == nil && st.Size() > maxRecipeBytes {
		return nil, diag.List{diag.Errorf(diag.Range{File: path}, "too-large", "the recipe is %d bytes, more than the %d allowed", st.Size(), maxRecipeBytes).
			WithHint("a recipe describes data, it does not hold it: fetch large inputs in a stage")}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		var ds diag.List
		hint := "check the path"
		if errors.Is(err, os.ErrNotExist) {
			hint = "no such file; check the path (recipes usually live in recipes/)"
		}
		ds.Add(diag.Errorf(diag.Range{File: path}, "read", "cannot read recipe: %v", unwrapPath(err)).WithHint("%s", hint))
		return nil, ds
	}
	return Parse(path, src, overrides)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Parse decodes and checks a recipe held in memory; filename is used in
// diagnostics and to resolve relative paths (its directory).
func Parse(filename string, src []byte, overrides []string) (*Recipe, diag.List) {
	root, ds := parseYAML(filename, src)
	if root == nil {
		ds.Sort()
		return nil, ds
	}
	if root.kind != nMap {
		ds.Add(diag.Errorf(root.rng(), "wrong-type", "a recipe must be a mapping, got %s", root.describe()).
			WithHint("start with `version: 1`, then name, model and stages; see docs/recipe.md"))
		ds.Sort()
		return nil, ds
	}
	if d, ok := checkVersion(filename, root); !ok {
		// an unknown version gates everything else: report it alone
		return nil, diag.List{d}
	}
	r := &Recipe{Path: filename, Source: src}
	for i, o := range overrides {
		ov, d := applyOverride(root, i+1, o)
		if d != nil {
			ds.Add(*d)
			continue
		}
		r.Overrides = append(r.Overrides, ov)
	}
	dec := &decoder{file: filename}
	dec.decodeStruct(root, reflect.ValueOf(r).Elem(), "", root)
	ds = append(ds, dec.ds...)
	if mn := root.get("model"); mn != nil {
		r.Model.Pos = mn.pos
	}
	if r.Name == "" {
		r.Name = slugFromPath(filename)
	}
	ds = append(ds, check(r, root)...)
	// the schema checks what the decoder checks; a schema finding is kept
	// only where the decoder reported nothing inside the same value
	for _, sd := range validateSchema(root) {
		if !reportedWithin(ds, sd.at) {
			ds = append(ds, sd.d)
		}
	}
	if ds.HasErrors() {
		// an unused stage is most often the consequence of an error already
		// reported (a misspelt input); say it only about otherwise valid recipes
		ds = slices.DeleteFunc(ds, func(d diag.Diagnostic) bool { return d.Code == "unused-stage" })
	}
	ds = ds.Dedupe()
	return r, ds
}

// checkVersion reports a missing or unknown version.
func checkVersion(file string, root *node) (diag.Diagnostic, bool) {
	v := root.get("version")
	if v == nil {
		for _, k := range root.keys {
			if suggest(k.str, []string{"version"}) == "version" {
				return diag.Errorf(k.rng(), "missing-version", "the recipe has no version; %q looks like a misspelling of it", k.str).
					WithHint("did you mean version? write `version: %d`", CurrentVersion), false
			}
		}
		return diag.Errorf(diag.Range{File: file, Start: root.pos, End: root.end}, "missing-version", "the recipe has no version").
			WithHint("add `version: %d` as the first line", CurrentVersion), false
	}
	if v.kind == nString {
		return diag.Errorf(v.rng(), "unsupported-version", "version must be a number, not the string %q", v.str).
			WithHint("write `version: %d` without quotes", CurrentVersion), false
	}
	if i, ok := intOf(v); !ok || i != CurrentVersion {
		return diag.Errorf(v.rng(), "unsupported-version", "unsupported recipe version %s; this lora reads version %d", v.str, CurrentVersion).
			WithHint("set `version: %d`, or use the lora release that introduced version %s", CurrentVersion, v.str), false
	}
	return diag.Diagnostic{}, true
}

var slugBad = regexp.MustCompile(`[^a-z0-9._-]+`)

func slugFromPath(p string) string {
	base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
	s := strings.Trim(slugBad.ReplaceAllString(strings.ToLower(base), "-"), "-._")
	if s == "" {
		return "recipe"
	}
	return s
}

// Stage returns the stage named name, or nil.
func (r *Recipe) Stage(name string) *Stage {
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Dir is the directory relative paths in the recipe are resolved against.
func (r *Recipe) Dir() string { return filepath.Dir(r.Path) }

// Resolve returns a recipe-relative path as a path usable from the working
// directory (absolute paths are returned unchanged).
func (r *Recipe) Resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir(), p)
}

// At returns a one-character range at p in the recipe file, for diagnostics
// about a stage or the model found after loading (at run time).
func (r *Recipe) At(p diag.Pos) diag.Range {
	return diag.Range{File: r.Path, Start: p, End: diag.Pos{Line: p.Line, Col: p.Col + 1}}
}

// Inputs returns the names of the stages s depends on: its needs, then the
// stages named by its input-like keys (input, adapter, heldout, perplexity
// text, init_adapter), without duplicates.
func (s *Stage) Inputs() []string {
	var out []string
	add := func(n string) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, n := range s.Needs {
		add(n)
	}
	for _, ref := range s.refs() {
		if ref.stage || ref.maybeStage && s.stageRefs[ref.name] {
			add(ref.name)
		}
	}
	return out
}

// ref is a key of a stage that names another stage (or, for maybeStage, a
// stage or a path).
type ref struct {
	key        string // e.g. "train.input"
	name       string
	stage      bool     // always a stage name
	maybeStage bool     // a stage name if one exists, else a path
	want       []string // acceptable kinds of the named stage
}

func (s *Stage) refs() []ref {
	var rs []ref
	switch {
	case s.Format != nil:
		rs = append(rs, ref{key: "format.input", name: s.Format.Input, stage: true, want: []string{KindFetch}})
	case s.Chunk != nil:
		rs = append(rs, ref{key: "chunk.input", name: s.Chunk.Input, stage: true, want: []string{KindFetch}})
	case s.Train != nil:
		rs = append(rs, ref{key: "train.input", name: s.Train.Input, stage: true, want: []string{KindFormat, KindChunk}})
		if s.Train.InitAdapter != "" {
			rs = append(rs, ref{key: "train.init_adapter", name: s.Train.InitAdapter, maybeStage: true, want: []string{KindTrain}})
		}
	case s.Evaluate != nil:
		rs = append(rs, ref{key: "evaluate.adapter", name: s.Evaluate.Adapter, stage: true, want: []string{KindTrain}})
		if s.Evaluate.Heldout != "" {
			rs = append(rs, ref{key: "evaluate.heldout", name: s.Evaluate.Heldout, stage: true, want: []string{KindFormat, KindChunk}})
		}
		if s.Evaluate.Perplexity != nil {
			rs = append(rs, ref{key: "evaluate.perplexity.text", name: s.Evaluate.Perplexity.Text, maybeStage: true, want: []string{KindFetch}})
		}
	}
	out := rs[:0]
	for _, r := range rs {
		if r.name != "" {
			out = append(out, r)
		}
	}
	return out
}

// Order returns the stages in dependency order: a stage comes after every
// stage in its Inputs, and among stages that are ready the file order wins.
func (r *Recipe) Order() ([]*Stage, error) {
	done := map[string]bool{}
	for _, s := range r.Stages {
		for _, in := range s.Inputs() {
			if r.Stage(in) == nil {
				return nil, fmt.Errorf("stage %q needs unknown stage %q", s.Name, in)
			}
		}
	}
	var order []*Stage
	for len(order) < len(r.Stages) {
		progressed := false
		for _, s := range r.Stages {
			if done[s.Name] {
				continue
			}
			ready := true
			for _, in := range s.Inputs() {
				if !done[in] {
					ready = false
					break
				}
			}
			if ready {
				done[s.Name] = true
				order = append(order, s)
				progressed = true
				break // restart from the top: file order among ready stages
			}
		}
		if !progressed {
			if c := r.cycle(); c != nil {
				return nil, fmt.Errorf("stages form a cycle: %s", strings.Join(c, " -> "))
			}
			return nil, errors.New("stages cannot be ordered")
		}
	}
	return order, nil
}

// cycle returns one dependency cycle as a path a -> b -> a, or nil.
func (r *Recipe) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(name string) bool
	visit = func(name string) bool {
		color[name] = grey
		stack = append(stack, name)
		s := r.Stage(name)
		if s != nil {
			for _, in := range s.Inputs() {
				if r.Stage(in) == nil {
					continue
				}
				switch color[in] {
				case grey:
					i := slices.Index(stack, in)
					found = append(slices.Clone(stack[i:]), in)
					return true
				case white:
					if visit(in) {
						return true
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
		return false
	}
	for _, s := range r.Stages {
		if color[s.Name] == white && visit(s.Name) {
			// report the cycle in dependency direction: a is needed by b ...
			slices.Reverse(found)
			return found
		}
	}
	return nil
}

// IsRemote reports whether a go-getter source string names something off
// this machine (http(s), git::, s3::, github.com/...); file:: and plain
// paths are local.
func IsRemote(source string) bool { return isRemote(source) }

// LocalFile returns the path of a local source resolved against the
// recipe's directory, and false for a remote source.
func (r *Recipe) LocalFile(source string) (string, bool) {
	if isRemote(source) {
		return "", false
	}
	return r.Resolve(localPath(source)), true
}
