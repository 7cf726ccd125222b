package recipe

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lora-dev/lora/pkg/diag"
)

// field is one decodable struct field and the rules its tags declare.
type field struct {
	key      string
	index    int
	typ      reflect.Type
	doc      string
	def      string
	hasDef   bool
	required bool
	enum     []string
	min, max *float64 // inclusive bounds
	xmin     *float64 // exclusive bounds
	xmax     *float64
	pattern  *regexp.Regexp
	examples []string // values to suggest when the pattern does not match
	env      string
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf returns the YAML fields of struct type t, in declaration order.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		key := sf.Tag.Get("yaml")
		if key == "" || key == "-" || !sf.IsExported() {
			continue
		}
		f := field{key: key, index: i, typ: sf.Type, doc: sf.Tag.Get("doc"), env: sf.Tag.Get("env")}
		f.def, f.hasDef = sf.Tag.Lookup("default")
		f.required = sf.Tag.Get("required") == "true"
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		f.min = floatTag(sf, "min")
		f.max = floatTag(sf, "max")
		f.xmin = floatTag(sf, "xmin")
		f.xmax = floatTag(sf, "xmax")
		if p := sf.Tag.Get("pattern"); p != "" {
			f.pattern = regexp.MustCompile(p)
		}
		if e := sf.Tag.Get("examples"); e != "" {
			f.examples = strings.Split(e, ",")
		}
		fs = append(fs, f)
	}
	fieldCache.Store(t, fs)
	return fs
}

func floatTag(sf reflect.StructField, name string) *float64 {
	s, ok := sf.Tag.Lookup(name)
	if !ok {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("recipe: bad %s tag on %s: %v", name, sf.Name, err))
	}
	return &v
}

func keysOf(fs []field) []string {
	ks := make([]string, len(fs))
	for i, f := range fs {
		ks[i] = f.key
	}
	return ks
}

var (
	stagesType   = reflect.TypeFor[[]*Stage]()
	exprType     = reflect.TypeFor[Expr]()
	targetsType  = reflect.TypeFor[Targets]()
	stageNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	defaultCache sync.Map // default tag text → *node
)

// decoder turns a node tree into Go values, reporting every problem.
type decoder struct {
	file string
	ds   diag.List
}

func (d *decoder) add(diags ...diag.Diagnostic) { d.ds.Add(diags...) }

// decodeStruct decodes mapping n into struct v. where names the place for
// messages ("optimizer"); at is the node that names the struct (for missing
// keys when n is nil).
func (d *decoder) decodeStruct(n *node, v reflect.Value, where string, at *node) {
	fs := fieldsOf(v.Type())
	present := map[string]bool{}
	if n != nil && n.kind != nNull {
		if n.kind != nMap {
			dd := diag.Errorf(n.rng(), "wrong-type", "%s must be a mapping, got %s", orTop(where), n.describe()).
				WithHint("write it as `key: value` lines indented under %s", lastElem(where))
			if n.kind == nString {
				first, rest, _ := strings.Cut(n.str, " ")
				if slices.Contains(keysOf(fs), first) {
					dd = dd.WithHint("is a colon missing? write `%s: %s`", first, rest)
				}
			}
			d.add(dd)
			return // its keys cannot be checked
		}
	}
	if n != nil && n.kind == nMap {
		for i, k := range n.keys {
			j := slices.IndexFunc(fs, func(f field) bool { return f.key == k.str })
			if j < 0 {
				d.add(unknownKey(k, where, v.Type()))
				continue
			}
			present[k.str] = true
			f := &fs[j]
			val := n.vals[i]
			if val.kind == nNull {
				// `key:` with nothing after it: almost always a value
				// forgotten or indented onto the wrong line
				d.add(diag.Errorf(k.rng(), "missing-value", "%s has no value", join(where, f.key)).
					WithHint("give %s a value (%s) or remove the key", f.key, firstSentence(f.doc)))
				present[k.str] = f.required // a required key is reported once; others default
				continue
			}
			d.decodeField(val, v.Field(f.index), f, join(where, f.key), k)
		}
	}
	for i := range fs {
		f := &fs[i]
		if present[f.key] {
			continue
		}
		if f.required {
			r := diag.Range{File: d.file}
			if at != nil {
				r = at.rng()
			} else if n != nil {
				r = n.rng()
			}
			d.add(diag.Errorf(r, "missing-key", "%s is missing required key %q", orTop(where), f.key).
				WithHint("add `%s:` (%s)", f.key, firstSentence(f.doc)))
			continue
		}
		fv := v.Field(f.index)
		if f.hasDef {
			dn := defaultNode(f.def)
			d.decodeField(dn, fv, f, join(where, f.key), nil)
		} else if f.typ.Kind() == reflect.Struct && f.typ != exprType {
			d.decodeStruct(nil, fv, join(where, f.key), nil)
		}
	}
}

func defaultNode(text string) *node {
	if n, ok := defaultCache.Load(text); ok {
		return n.(*node)
	}
	n, ds := parseYAML("default", []byte(text))
	if ds.HasErrors() || n == nil {
		panic(fmt.Sprintf("recipe: bad default tag %q: %v", text, ds.Err()))
	}
	defaultCache.Store(text, n)
	return n
}

// decodeField decodes one value into fv according to f's type and rules.
func (d *decoder) decodeField(n *node, fv reflect.Value, f *field, where string, key *node) {
	t := fv.Type()
	switch {
	case t == stagesType:
		d.decodeStages(n, fv)
		return
	case t == exprType:
		if n.kind != nString {
			d.add(wrongType(n, where, "an expression (a string)").WithHint("write the expression as text, e.g. %s: loss < 1.0", lastElem(where)))
			return
		}
		fv.Set(reflect.ValueOf(Expr{Src: n.str, Pos: n.pos, file: n.file, m: n.m}))
		return
	case t == targetsType:
		d.decodeTargets(n, fv, where)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if n.kind == nNull {
			n = &node{kind: nMap, file: n.file, pos: n.pos, end: n.end}
		}
		p := reflect.New(t.Elem())
		d.decodeStruct(n, p.Elem(), where, key)
		fv.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, fv, where, key)
	case reflect.String:
		if n.kind != nString {
			d.add(wrongType(n, where, "a string").WithHint("quote the value: %s: %q", lastElem(where), n.str))
			return
		}
		if f.enum != nil && !slices.Contains(f.enum, n.str) {
			d.add(badEnum(n, where, f.enum))
			return
		}
		if f.pattern != nil && !f.pattern.MatchString(n.str) {
			dd := diag.Errorf(n.rng(), "bad-value", "%s: %q does not match %s", where, n.str, f.pattern).
				WithHint("%s", firstSentence(f.doc))
			if s := suggest(n.str, f.examples); s != "" {
				dd = dd.WithHint("did you mean %s? %s", s, firstSentence(f.doc))
			}
			if f.key == "sha256" {
				dd.Message = fmt.Sprintf("%s: %q is not a sha256 (64 lowercase hex digits)", where, n.str)
				switch {
				case len(n.str) != 64:
					dd = dd.WithHint("it has %d characters, not 64; copy the whole digest (sha256sum FILE)", len(n.str))
				case strings.ToLower(n.str) == n.str:
					dd = dd.WithHint("only 0-9 and a-f are hex digits")
				default:
					dd = dd.WithHint("write it in lowercase: %s", strings.ToLower(n.str))
				}
			}
			d.add(dd)
			return
		}
		fv.SetString(n.str)
	case reflect.Int, reflect.Int64:
		i, ok := intOf(n)
		if !ok {
			d.add(wrongType(n, where, "an integer"))
			return
		}
		if d.checkRange(n, float64(i), f, where) {
			fv.SetInt(i)
		}
	case reflect.Uint64:
		i, ok := intOf(n)
		if !ok || i < 0 {
			d.add(wrongType(n, where, "a non-negative integer"))
			return
		}
		fv.SetUint(uint64(i))
	case reflect.Float64:
		x, ok := floatOf(n)
		if !ok {
			d.add(wrongType(n, where, "a number"))
			return
		}
		if d.checkRange(n, x, f, where) {
			fv.SetFloat(x)
		}
	case reflect.Bool:
		if n.kind != nBool {
			d.add(wrongType(n, where, "a boolean (true or false)"))
			return
		}
		fv.SetBool(n.b)
	case reflect.Slice:
		if n.kind != nSeq {
			d.add(wrongType(n, where, "a list").WithHint("write a list: %s: [a, b]", lastElem(where)))
			return
		}
		s := reflect.MakeSlice(t, len(n.seq), len(n.seq))
		for i, item := range n.seq {
			d.decodeField(item, s.Index(i), f, fmt.Sprintf("%s[%d]", where, i), item)
		}
		fv.Set(s)
	case reflect.Array:
		if n.kind != nSeq || len(n.seq) != t.Len() {
			d.add(wrongType(n, where, fmt.Sprintf("a list of %d numbers", t.Len())))
			return
		}
		for i, item := range n.seq {
			d.decodeField(item, fv.Index(i), f, fmt.Sprintf("%s[%d]", where, i), item)
		}
	default:
		panic("recipe: cannot decode into " + t.String())
	}
}

func (d *decoder) checkRange(n *node, x float64, f *field, where string) bool {
	var bad string
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		bad = "a finite number"
	case f.min != nil && x < *f.min:
		bad = fmt.Sprintf(">= %g", *f.min)
	case f.xmin != nil && x <= *f.xmin:
		bad = fmt.Sprintf("> %g", *f.xmin)
	case f.max != nil && x > *f.max:
		bad = fmt.Sprintf("<= %g", *f.max)
	case f.xmax != nil && x >= *f.xmax:
		bad = fmt.Sprintf("< %g", *f.xmax)
	}
	if bad == "" {
		return true
	}
	d.add(diag.Errorf(n.rng(), "out-of-range", "%s is %s; it must be %s", where, n.str, bad).
		WithHint("%s", firstSentence(f.doc)))
	return false
}

func intOf(n *node) (int64, bool) {
	switch n.kind {
	case nInt:
		return n.i, true
	case nFloat:
		if n.f == math.Trunc(n.f) && math.Abs(n.f) < 1<<53 {
			return int64(n.f), true
		}
	}
	return 0, false
}

func floatOf(n *node) (float64, bool) {
	switch n.kind {
	case nInt:
		return float64(n.i), true
	case nFloat:
		return n.f, true
	}
	return 0, false
}

func (d *decoder) decodeTargets(n *node, fv reflect.Value, where string) {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range targetNames {
			if !yield(k) {
				return
			}
		}
	})
	if n.kind == nString {
		if n.str == "all-linear" {
			fv.Set(reflect.ValueOf(Targets(slices.Clone(AllTargets))))
			return
		}
		d.add(badEnum(n, where, []string{"all-linear"}).WithHint("use all-linear or a list such as [q_proj, v_proj]"))
		return
	}
	if n.kind != nSeq || len(n.seq) == 0 {
		d.add(wrongType(n, where, "a non-empty list of layer names or \"all-linear\"").WithHint("e.g. targets: [q_proj, v_proj]"))
		return
	}
	var out Targets
	seen := map[string]bool{}
	for i, item := range n.seq {
		w := fmt.Sprintf("%s[%d]", where, i)
		if item.kind != nString {
			d.add(wrongType(item, w, "a layer name"))
			continue
		}
		c, ok := targetNames[item.str]
		if !ok {
			d.add(badEnum(item, w, names))
			continue
		}
		if seen[c] {
			d.add(diag.Errorf(item.rng(), "duplicate-value", "%s: layer %s is listed twice", where, c))
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	// canonical order, so that [v, q] and [q, v] mean (and hash) the same
	slices.SortFunc(out, func(a, b string) int { return slices.Index(AllTargets, a) - slices.Index(AllTargets, b) })
	fv.Set(reflect.ValueOf(out))
}

// decodeStages decodes the stages mapping, keeping file order.
func (d *decoder) decodeStages(n *node, fv reflect.Value) {
	if n.kind != nMap {
		d.add(wrongType(n, "stages", "a mapping from stage name to stage").
			WithHint("write stages as `name:` keys, e.g.\n  stages:\n    data:\n      fetch: {source: ./data.json}"))
		return
	}
	var stages []*Stage
	for i, k := range n.keys {
		if !stageNameRe.MatchString(k.str) {
			d.add(diag.Errorf(k.rng(), "bad-name", "stage name %q is not a valid name", k.str).
				WithHint("use letters, digits, '_' and '-', starting with a letter or '_'"))
		}
		s := &Stage{Name: k.str, Pos: k.pos}
		val := n.vals[i]
		where := "stages." + k.str
		if val.kind == nNull {
			d.add(diag.Errorf(k.rng(), "missing-kind", "stage %q is empty", k.str).
				WithHint("give it one of the kind keys: %s", strings.Join(Kinds, ", ")))
			stages = append(stages, s)
			continue
		}
		d.decodeStruct(val, reflect.ValueOf(s).Elem(), where, k)
		if val.kind == nMap {
			var kinds []*node
			for _, kk := range val.keys {
				if slices.Contains(Kinds, kk.str) {
					kinds = append(kinds, kk)
				}
			}
			switch {
			case len(kinds) == 0:
				d.add(diag.Errorf(k.rng(), "missing-kind", "stage %q has no kind", k.str).
					WithHint("give it exactly one of the kind keys: %s", strings.Join(Kinds, ", ")))
			case len(kinds) > 1:
				d.add(diag.Errorf(kinds[1].rng(), "multiple-kinds", "stage %q has two kinds, %s and %s", k.str, kinds[0].str, kinds[1].str).
					WithHint("split it into two stages and link them with needs or input"))
			default:
				s.Kind = kinds[0].str
			}
		}
		stages = append(stages, s)
	}
	fv.Set(reflect.ValueOf(stages))
}

// synonyms maps keys people bring from other tools to lora's key.
var synonyms = map[string]string{
	"learning_rate": "lr", "lr_scheduler": "scheduler", "lr_scheduler_type": "scheduler",
	"r": "rank", "lora_r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout",
	"target_modules": "targets", "num_epochs": "epochs", "num_train_epochs": "epochs",
	"per_device_train_batch_size": "micro_batch_size", "gradient_accumulation_steps": "batch_size",
	"warmup": "warmup_steps", "max_seq_length": "cutoff_len", "max_length": "cutoff_len",
	"seq_len": "cutoff_len", "adam_beta1": "betas", "adam_beta2": "betas", "adam_epsilon": "eps",
	"depends_on": "needs", "deps": "needs", "if": "when", "url": "source", "path": "source",
	"checksum": "sha256", "hash": "sha256", "prompt_format": "format", "template": "format",
	"quantization": "quantize", "eval": "evaluate", "early_stopping": "stop_when",
	"gpu": "vulkan", "cuda": "vulkan", "metal": "vulkan", "rocm": "vulkan", "vk": "vulkan",
}

func unknownKey(k *node, where string, t reflect.Type) diag.Diagnostic {
	fs := fieldsOf(t)
	allowed := keysOf(fs)
	d := diag.Errorf(k.rng(), "unknown-key", "unknown key %q in %s", k.str, orTop(where))
	if s := suggest(k.str, allowed); s != "" {
		return d.WithHint("did you mean %s?", s)
	}
	// a key that belongs one level down: learning_rate in train (optimizer.lr)
	for _, f := range fs {
		ft := f.typ
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct || ft == exprType {
			continue
		}
		if s := suggest(k.str, keysOf(fieldsOf(ft))); s != "" {
			if t == reflect.TypeFor[Stage]() {
				return d.WithHint("%s belongs under the stage's kind key: %s: {%s: ...}", s, f.key, s)
			}
			return d.WithHint("did you mean %s.%s? (%s belongs under %s)", f.key, s, s, f.key)
		}
	}
	return d.WithHint("allowed keys here: %s", strings.Join(allowed, ", "))
}

func badEnum(n *node, where string, allowed []string) diag.Diagnostic {
	d := diag.Errorf(n.rng(), "bad-enum", "%s: %s is not allowed; use one of %s", where, n.describe(), strings.Join(allowed, ", "))
	if n.kind == nString {
		if s := suggest(n.str, allowed); s != "" {
			return d.WithHint("did you mean %s?", s)
		}
	}
	return d
}

func wrongType(n *node, where, want string) diag.Diagnostic {
	return diag.Errorf(n.rng(), "wrong-type", "%s must be %s, got %s", where, want, n.describe())
}

// suggest returns the allowed word nearest to s, if near enough to be a likely typo.
func suggest(s string, allowed []string) string {
	if syn, ok := synonyms[s]; ok && slices.Contains(allowed, syn) {
		return syn
	}
	best, bestD := "", math.MaxInt
	for _, a := range allowed {
		if dd := editDistance(strings.ToLower(s), a); dd < bestD {
			best, bestD = a, dd
		}
	}
	limit := max(1, min(len(s), len(best))/3)
	if bestD <= limit || (len(s) > 3 && strings.Contains(best, s)) {
		return best
	}
	return ""
}

// editDistance is the Damerau-Levenshtein (optimal string alignment) distance.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func orTop(where string) string {
	if where == "" {
		return "the recipe"
	}
	return where
}

func lastElem(where string) string {
	if i := strings.LastIndexByte(where, '.'); i >= 0 {
		return where[i+1:]
	}
	return where
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}
