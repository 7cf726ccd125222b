package recipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/lora-dev/lora/pkg/diag"
)

// check runs the semantic checks after decoding: references and the stage
// graph, defaults that depend on the graph, expressions, local files,
// checksums and cross-field rules. root locates the problems.
func check(r *Recipe, root *node) diag.List {
	c := &checker{r: r, root: root, stagesNode: root.get("stages")}
	c.model()
	if sn := root.get("stages"); sn != nil && sn.kind == nMap && len(sn.keys) == 0 {
		c.add(diag.Errorf(sn.rng(), "no-stages", "the recipe has no stages").
			WithHint("add at least a fetch, a format and a train stage; see recipes/alpaca-chat.yaml"))
	}
	c.graph()
	for _, s := range r.Stages {
		c.stage(s)
	}
	for _, s := range r.Stages {
		c.exprs(s)
	}
	return c.ds
}

type checker struct {
	r          *Recipe
	root       *node
	stagesNode *node
	ds         diag.List
}

func (c *checker) add(d diag.Diagnostic) { c.ds.Add(d) }

// at finds the node at a key path under the root ("model", "sha256"); falls
// back to the deepest node found.
func (c *checker) at(path ...string) *node {
	n := c.root
	for _, p := range path {
		next := n.get(p)
		if next == nil {
			if k := n.keyNode(p); k != nil {
				return k
			}
			return n
		}
		n = next
	}
	return n
}

// key returns the key node of the last path element (for "this key is wrong").
func (c *checker) key(path ...string) *node {
	parent := c.at(path[:len(path)-1]...)
	if k := parent.keyNode(path[len(path)-1]); k != nil {
		return k
	}
	return parent
}

func (c *checker) stageNode(s *Stage, path ...string) *node {
	return c.at(append([]string{"stages", s.Name}, path...)...)
}

func (c *checker) model() {
	m := c.r.Model
	if m.Source == "" {
		return
	}
	c.source(m.Source, m.SHA256, c.at("model", "source"), "model", true)
}

// isRemote reports whether a go-getter source string names something off this machine.
func isRemote(src string) bool {
	if strings.HasPrefix(src, "file::") || strings.HasPrefix(src, "file://") {
		return false
	}
	if strings.Contains(src, "::") || strings.Contains(src, "://") {
		return true
	}
	for _, h := range []string{"github.com/", "gitlab.com/", "bitbucket.org/"} {
		if strings.HasPrefix(src, h) {
			return true
		}
	}
	return false
}

func localPath(src string) string {
	src = strings.TrimPrefix(src, "file::")
	src = strings.TrimPrefix(src, "file://")
	return src
}

// source checks a fetchable source and its pin.
func (c *checker) source(src, sum string, at *node, what string, isModel bool) {
	if isRemote(src) {
		if sum == "" {
			c.add(diag.Errorf(at.rng(), "missing-sha256", "%s: the remote source %s is not pinned", what, src).
				WithHint("add `sha256: <64 hex digits>` next to source (sha256sum the file once); remote files must be pinned"))
		}
		return
	}
	p := c.r.Resolve(localPath(src))
	st, err := os.Stat(p)
	switch {
	case err != nil:
		c.add(diag.Errorf(at.rng(), "missing-file", "%s: local source %s does not exist (looked for %s)", what, src, p).
			WithHint("paths are relative to the recipe's directory; fix the path or fetch the file"))
	case !isModel && st.IsDir():
		c.add(diag.Errorf(at.rng(), "missing-file", "%s: local source %s is a directory, not a file", what, src).
			WithHint("name one file"))
	}
}

func (c *checker) stage(s *Stage) {
	switch {
	case s.Fetch != nil:
		if s.Fetch.Source != "" {
			c.source(s.Fetch.Source, s.Fetch.SHA256, c.stageNode(s, "fetch", "source"), "stages."+s.Name, false)
		}
	case s.Format != nil:
		c.format(s)
		c.split(s.Format.EvalSplit, c.stageNode(s, "format", "eval_split"), s.Name)
	case s.Chunk != nil:
		ch := s.Chunk
		if ch.OverlapLen >= ch.CutoffLen && ch.CutoffLen > 0 {
			c.add(diag.Errorf(c.stageNode(s, "chunk", "overlap_len").rng(), "out-of-range",
				"stages.%s.chunk.overlap_len (%d) must be less than cutoff_len (%d)", s.Name, ch.OverlapLen, ch.CutoffLen).
				WithHint("a common choice is half of cutoff_len: overlap_len: %d", ch.CutoffLen/2))
		}
	case s.Train != nil:
		c.train(s)
	case s.Evaluate != nil:
		if e := s.Evaluate; e.Perplexity == nil && e.Heldout == "" && e.Samples == nil && !e.Gate.IsZero() {
			c.add(diag.Errorf(c.stageNode(s, "evaluate").rng(), "nothing-to-gate",
				"stages.%s.evaluate has a gate but measures nothing", s.Name).
				WithHint("add perplexity, heldout or samples"))
		}
	}
}

func (c *checker) format(s *Stage) {
	f := s.Format.Format
	if f == "" || slices.Contains(BuiltinFormats, f) {
		return
	}
	at := c.stageNode(s, "format", "format")
	looksPath := strings.ContainsAny(f, `/\`) || strings.HasSuffix(f, ".json")
	if !looksPath {
		d := diag.Errorf(at.rng(), "bad-enum", "stages.%s.format.format: unknown format %q; built-in formats: %s", s.Name, f, strings.Join(BuiltinFormats, ", "))
		if sg := suggest(f, BuiltinFormats); sg != "" {
			d = d.WithHint("did you mean %s? (a format file is given by its path, e.g. ./formats/mine.json)", sg)
		} else {
			d = d.WithHint("use a built-in name or a path to a format file, e.g. ./formats/mine.json")
		}
		c.add(d)
		return
	}
	p := c.r.Resolve(f)
	b, err := os.ReadFile(p)
	if err != nil {
		hint := "paths are relative to the recipe's directory"
		if !errors.Is(err, fs.ErrNotExist) {
			hint = "make the file readable"
		}
		c.add(diag.Errorf(at.rng(), "missing-file", "stages.%s.format.format: cannot read format file %s: %v", s.Name, p, unwrapPath(err)).WithHint("%s", hint))
		return
	}
	if err := ValidateFormatFile(b); err != nil {
		c.add(diag.Errorf(at.rng(), "bad-format-file", "stages.%s.format.format: format file %s is invalid: %v", s.Name, p, err).
			WithHint("a format file is a JSON object like {\"instruction,output\": \"User: %%instruction%%\\nAssistant: %%output%%\"}"))
	}
}

// maxFormatFile bounds format files; real ones are a few hundred bytes.
const maxFormatFile = 1 << 20

// ValidateFormatFile checks the shape of a prompt-format file (as
// text-generation-webui writes them): a JSON object whose keys are
// comma-joined record field names and whose values are template strings.
// The format stage's own parser (pkg/dataset) checks the templates in depth
// when it runs; lint cannot import it (it imports the recipe).
func ValidateFormatFile(b []byte) error {
	if len(b) > maxFormatFile {
		return fmt.Errorf("it is %d bytes, more than the %d allowed", len(b), maxFormatFile)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if len(m) == 0 {
		return errors.New("the object has no templates")
	}
	keys := slices.Sorted(mapKeys(m))
	for _, k := range keys {
		var t string
		if err := json.Unmarshal(m[k], &t); err != nil {
			return fmt.Errorf("template %q is not a string", k)
		}
		for _, f := range strings.Split(k, ",") {
			if strings.TrimSpace(f) == "" {
				return fmt.Errorf("key %q has an empty field name", k)
			}
		}
	}
	return nil
}

// split checks an eval_split value: a fraction up to 0.5 or a whole count.
func (c *checker) split(v float64, at *node, stage string) {
	if v == 0 {
		return
	}
	if v < 1 && v > 0.5 {
		c.add(diag.Errorf(at.rng(), "out-of-range", "stages.%s: eval_split %g holds out more than half the data", stage, v).
			WithHint("use a fraction up to 0.5 (e.g. 0.05) or a whole count of records (e.g. 200)"))
	}
	if v > 1 && v != math.Trunc(v) {
		c.add(diag.Errorf(at.rng(), "out-of-range", "stages.%s: eval_split %g is neither a fraction nor a whole count", stage, v).
			WithHint("use a fraction up to 0.5 or a whole number of records"))
	}
}

func (c *checker) train(s *Stage) {
	t := s.Train
	if t.MicroBatchSize > 0 && t.BatchSize%t.MicroBatchSize != 0 {
		c.add(diag.Errorf(c.stageNode(s, "train", "batch_size").rng(), "batch-multiple",
			"stages.%s.train.batch_size (%d) is not a multiple of micro_batch_size (%d)", s.Name, t.BatchSize, t.MicroBatchSize).
			WithHint("use batch_size: %d or %d", (t.BatchSize/t.MicroBatchSize)*t.MicroBatchSize, (t.BatchSize/t.MicroBatchSize+1)*t.MicroBatchSize))
	}
	if t.Epochs != 0 && t.MaxSteps != 0 {
		c.add(diag.Warningf(c.stageNode(s, "train", "max_steps").rng(), "ignored-key",
			"stages.%s.train has both epochs and max_steps; max_steps wins", s.Name).
			WithHint("remove one of them"))
	}
	if t.Epochs == 0 && t.MaxSteps == 0 {
		t.Epochs = 3
	}
	o := t.Optimizer
	if o.WarmupSteps != 0 && o.WarmupRatio != 0 {
		c.add(diag.Warningf(c.stageNode(s, "train", "optimizer", "warmup_ratio").rng(), "ignored-key",
			"stages.%s.train.optimizer has both warmup_steps and warmup_ratio; warmup_steps wins", s.Name).
			WithHint("remove one of them"))
	}
	if (o.NumCycles != 0) && o.Scheduler != "cosine" && o.Scheduler != "cosine_with_restarts" {
		c.add(diag.Warningf(c.stageNode(s, "train", "optimizer", "num_cycles").rng(), "ignored-key",
			"num_cycles only matters for the cosine schedules, not %s", o.Scheduler))
	}
	if o.Scheduler == "constant" && (o.WarmupSteps != 0 || o.WarmupRatio != 0) {
		c.add(diag.Warningf(c.stageNode(s, "train", "optimizer", "scheduler").rng(), "ignored-key",
			"the constant schedule ignores warmup").WithHint("use constant_with_warmup"))
	}
	if t.EvalEvery > 0 && t.Input != "" {
		// eval_loss needs held-out examples: from eval_split here or at the input stage
		in := c.r.Stage(t.Input)
		if t.EvalSplit == 0 && (in == nil || in.Format == nil || in.Format.EvalSplit == 0) {
			c.add(diag.Errorf(c.stageNode(s, "train", "eval_every").rng(), "no-heldout",
				"stages.%s.train.eval_every is set but there are no held-out examples", s.Name).
				WithHint("set eval_split here or on the format stage (e.g. eval_split: 0.05)"))
		}
	}
	c.split(t.EvalSplit, c.stageNode(s, "train", "eval_split"), s.Name)
}

// graph resolves defaulted references, checks every reference names a
// stage of the right kind, and finds cycles.
func (c *checker) graph() {
	names := make([]string, len(c.r.Stages))
	for i, s := range c.r.Stages {
		names[i] = s.Name
	}
	for _, s := range c.r.Stages {
		c.defaults(s)
		for i, n := range s.Needs {
			if c.r.Stage(n) == nil {
				c.unknownStage(c.stageNode(s, "needs").seqAt(i), s.Name, "needs", n, names)
			}
		}
		for _, rf := range s.refs() {
			path := append([]string{"stages", s.Name}, strings.Split(rf.key, ".")...)
			at := c.at(path...)
			target := c.r.Stage(rf.name)
			if rf.maybeStage {
				if target == nil {
					c.pathRef(s, rf, at)
					continue
				}
				if s.stageRefs == nil {
					s.stageRefs = map[string]bool{}
				}
				s.stageRefs[rf.name] = true
			}
			if target == nil {
				c.unknownStage(at, s.Name, rf.key, rf.name, names)
				continue
			}
			if target.Kind != "" && !slices.Contains(rf.want, target.Kind) {
				c.add(diag.Errorf(at.rng(), "wrong-input-kind", "stages.%s.%s names %q, a %s stage; it must be a %s stage",
					s.Name, rf.key, rf.name, target.Kind, strings.Join(rf.want, " or ")).WithHint("%s", kindHint(rf, target)))
			}
		}
	}
	if cyc := c.r.cycle(); cyc != nil {
		c.cycle(cyc)
	}
	c.unused()
}

// unused warns, in a recipe that trains, about data stages (fetch, format,
// chunk) whose output no stage reads: usually a forgotten input.
func (c *checker) unused() {
	// a recipe without training only prepares data: every stage is its output
	if !slices.ContainsFunc(c.r.Stages, func(s *Stage) bool { return s.Kind == KindTrain }) {
		return
	}
	used := map[string]bool{}
	for _, s := range c.r.Stages {
		for _, in := range s.Inputs() {
			used[in] = true
		}
	}
	for _, s := range c.r.Stages {
		switch s.Kind {
		case KindFetch, KindFormat, KindChunk:
		default:
			continue
		}
		if used[s.Name] {
			continue
		}
		at := c.stagesNode.keyNode(s.Name)
		if at == nil {
			continue
		}
		c.add(diag.Warningf(at.rng(), "unused-stage", "stage %q (%s) is not used by any stage", s.Name, s.Kind).
			WithHint("name it in another stage's input or needs, or remove it"))
	}
}

// cycle reports a dependency cycle (cyc[i+1] depends on cyc[i], last ==
// first) at the edge most likely to be the mistake: a stage that depends on
// a stage defined after it in the file.
func (c *checker) cycle(cyc []string) {
	idx := func(name string) int {
		return slices.IndexFunc(c.r.Stages, func(s *Stage) bool { return s.Name == name })
	}
	n := len(cyc) - 1 // distinct stages
	blame := 0        // edge: cyc[blame+1] needs cyc[blame]
	for i := range n {
		if idx(cyc[i]) > idx(cyc[i+1]) {
			blame = i
			break
		}
	}
	// walk the cycle in "needs" direction from the blamed stage
	path := []string{cyc[blame+1]}
	for k := 0; k < n; k++ {
		path = append(path, cyc[((blame-k)%n+n)%n])
	}
	from := c.r.Stage(path[0])
	at := c.refNode(from, path[1])
	c.add(diag.Errorf(at.rng(), "cycle", "dependency cycle: %s", strings.Join(path, " needs ")).
		WithHint("a stage cannot depend on itself, directly or through others; remove %s from the dependencies of %s", path[1], path[0]))
}

// refNode finds where stage s names stage dep: a needs entry or a key like
// input; else the stage's name.
func (c *checker) refNode(s *Stage, dep string) *node {
	if needs := c.stageNode(s, "needs"); needs.kind == nSeq {
		for _, item := range needs.seq {
			if item.kind == nString && item.str == dep {
				return item
			}
		}
	}
	for _, rf := range s.refs() {
		if rf.name == dep {
			return c.at(append([]string{"stages", s.Name}, strings.Split(rf.key, ".")...)...)
		}
	}
	if k := c.stagesNode.keyNode(s.Name); k != nil {
		return k
	}
	return c.root
}

func kindHint(rf ref, target *Stage) string {
	switch {
	case target.Kind == KindFetch && slices.Contains(rf.want, KindFormat):
		return fmt.Sprintf("training needs examples: add a format stage (records) or a chunk stage (raw text) with input: %s, and train on it", target.Name)
	case rf.key == "evaluate.adapter":
		return "name the train stage whose adapter to evaluate"
	}
	return fmt.Sprintf("name a %s stage", strings.Join(rf.want, " or "))
}

// pathRef checks a stage-or-path value that names no stage: it must be a local path.
func (c *checker) pathRef(s *Stage, rf ref, at *node) {
	p := c.r.Resolve(rf.name)
	_, err := os.Stat(p)
	if err == nil {
		return
	}
	if rf.key == "train.init_adapter" {
		// an earlier run's adapter may not exist yet on this machine: warn only
		c.add(diag.Warningf(at.rng(), "missing-file", "stages.%s.%s: %s is neither a stage nor an existing path (looked for %s)", s.Name, rf.key, rf.name, p).
			WithHint("run the recipe that makes that adapter first, or pass --set stages.%s.%s=<adapter dir>", s.Name, rf.key))
		return
	}
	names := make([]string, 0, len(c.r.Stages))
	for _, st := range c.r.Stages {
		names = append(names, st.Name)
	}
	d := diag.Errorf(at.rng(), "missing-file", "stages.%s.%s: %s is neither a stage nor an existing file (looked for %s)", s.Name, rf.key, rf.name, p)
	if sg := suggest(rf.name, names); sg != "" {
		d = d.WithHint("did you mean stage %s?", sg)
	} else {
		d = d.WithHint("paths are relative to the recipe's directory")
	}
	c.add(d)
}

func (n *node) seqAt(i int) *node {
	if n != nil && n.kind == nSeq && i < len(n.seq) {
		return n.seq[i]
	}
	return n
}

func (c *checker) unknownStage(at *node, stage, key, name string, names []string) {
	d := diag.Errorf(at.rng(), "unknown-stage", "stages.%s.%s: no stage named %q", stage, key, name)
	if s := suggest(name, names); s != "" {
		d = d.WithHint("did you mean %s?", s)
	} else {
		d = d.WithHint("stages: %s", strings.Join(names, ", "))
	}
	c.add(d)
}

// defaults fills train.input and evaluate.adapter from needs.
func (c *checker) defaults(s *Stage) {
	pick := func(key string, kinds ...string) string {
		var found []string
		for _, n := range s.Needs {
			if t := c.r.Stage(n); t != nil && slices.Contains(kinds, t.Kind) {
				found = append(found, n)
			}
		}
		at := c.key("stages", s.Name, strings.Split(key, ".")[0])
		if nn := c.at("stages", s.Name, "needs"); nn.kind != nSeq && c.at("stages", s.Name).keyNode("needs") != nil {
			return "" // needs itself is wrong, reported by the decoder
		}
		for _, n := range s.Needs {
			if c.r.Stage(n) == nil {
				return "" // the unknown stage is reported; guessing further is noise
			}
		}
		switch len(found) {
		case 1:
			return found[0]
		case 0:
			c.add(diag.Errorf(at.rng(), "missing-input", "stages.%s: %s is not set and no %s stage is in needs", s.Name, key, strings.Join(kinds, " or ")).
				WithHint("set %s: <stage>, or add the stage to needs", lastElem(key)))
		default:
			c.add(diag.Errorf(at.rng(), "ambiguous-input", "stages.%s: %s is not set and needs has several candidates: %s", s.Name, key, strings.Join(found, ", ")).
				WithHint("set %s to one of them", lastElem(key)))
		}
		return ""
	}
	switch {
	case s.Train != nil && s.Train.Input == "":
		s.Train.Input = pick("train.input", KindFormat, KindChunk)
	case s.Evaluate != nil && s.Evaluate.Adapter == "":
		s.Evaluate.Adapter = pick("evaluate.adapter", KindTrain)
	}
}

// exprs compiles the stage's expressions and reports errors at their place.
func (c *checker) exprs(s *Stage) {
	if !s.When.IsZero() {
		// when may look at the stages this one depends on, directly or not
		c.expr(s.When, GateWhen, c.upstream(s))
	}
	if s.Train != nil && !s.Train.StopWhen.IsZero() {
		if c.expr(s.Train.StopWhen, GateStopWhen, nil) {
			c.stopWhenNeeds(s)
		}
	}
	if s.Evaluate != nil && !s.Evaluate.Gate.IsZero() {
		if c.expr(s.Evaluate.Gate, GateEval, nil) {
			c.gateNeeds(s)
		}
	}
}

// gateNeeds warns about gate names whose metric the stage does not measure:
// the gate would compare zeros and fail (or pass) for nothing. A warning, not
// an error: a stage kind registered by another package may measure more.
func (c *checker) gateNeeds(s *Stage) {
	e := s.Evaluate
	if e.Perplexity == nil && e.Heldout == "" && e.Samples == nil {
		return // reported as nothing-to-gate
	}
	need := map[string]string{
		"perplexity":         "add perplexity: {text: <stage or file>}",
		"heldout_loss":       "add heldout: <format or chunk stage>",
		"heldout_perplexity": "add heldout: <format or chunk stage>",
		"base_perplexity":    "add perplexity: {text: ...} and compare_base: true",
		"base_heldout_loss":  "add heldout: <stage> and compare_base: true",
	}
	if e.Perplexity != nil {
		need["base_perplexity"] = "add compare_base: true"
	}
	if e.Heldout != "" {
		need["base_heldout_loss"] = "add compare_base: true"
	}
	has := map[string]bool{
		"perplexity":         e.Perplexity != nil,
		"heldout_loss":       e.Heldout != "",
		"heldout_perplexity": e.Heldout != "",
		"base_perplexity":    e.Perplexity != nil && e.CompareBase,
		"base_heldout_loss":  e.Heldout != "" && e.CompareBase,
	}
	for _, name := range slices.Sorted(mapKeys(need)) {
		off, used := identifiers(e.Gate.Src)[name]
		if !used || has[name] {
			continue
		}
		c.add(diag.Warningf(e.Gate.rangeAt(off, len(name)), "unmeasured", "gate uses %s, which stages.%s does not measure (it will read 0)", name, s.Name).
			WithHint("%s", need[name]))
	}
}

// stopWhenNeeds warns when stop_when reads eval metrics that are never
// computed (they stay NaN, so comparisons with them are false).
func (c *checker) stopWhenNeeds(s *Stage) {
	if s.Train.EvalEvery > 0 {
		return
	}
	ids := identifiers(s.Train.StopWhen.Src)
	for _, name := range []string{"eval_loss", "eval_perplexity"} {
		if off, used := ids[name]; used {
			c.add(diag.Warningf(s.Train.StopWhen.rangeAt(off, len(name)), "unmeasured",
				"stop_when uses %s, but eval_every is 0 so it is never measured (comparisons with it are false)", name).
				WithHint("set eval_every (and eval_split) in stages.%s.train", s.Name))
		}
	}
}

func (c *checker) upstream(s *Stage) []string {
	seen := map[string]bool{}
	var walk func(*Stage)
	walk = func(st *Stage) {
		for _, in := range st.Inputs() {
			if !seen[in] {
				seen[in] = true
				if t := c.r.Stage(in); t != nil {
					walk(t)
				}
			}
		}
	}
	walk(s)
	out := []string{}
	for _, st := range c.r.Stages {
		if seen[st.Name] {
			out = append(out, st.Name)
		}
	}
	return out
}

// expr compiles an expression and reports its error; it returns whether it compiled.
func (c *checker) expr(e Expr, kind string, stages []string) bool {
	_, err := compileGate(kind, e.Src, stages)
	if err == nil {
		return true
	}
	var ee *ExprError
	if !errors.As(err, &ee) {
		c.add(diag.Errorf(diag.Range{File: e.file, Start: e.Pos}, "bad-expression", "%s: %v", kind, err))
		return false
	}
	rng := e.rangeAt(ee.Offset, ee.Length)
	code := "bad-expression"
	switch {
	case strings.HasPrefix(ee.Message, "unknown name"):
		code = "unknown-name"
	case strings.Contains(ee.Message, "not allowed"):
		code = "nondeterministic"
	case strings.Contains(ee.Message, "must be true or false"):
		code = "not-boolean"
	case strings.Contains(ee.Message, "does not need"):
		code = "unknown-stage"
	}
	d := diag.Errorf(rng, code, "%s", ee.Message)
	if ee.Hint != "" {
		d = d.WithHint("%s", ee.Hint)
	}
	c.add(d)
	return false
}

// rangeAt maps n runes at rune offset off of the expression to the file.
func (e Expr) rangeAt(off, n int) diag.Range {
	start := e.m.at(off)
	if !start.IsValid() {
		start = e.Pos
	}
	end := e.m.at(off + max(n, 1) - 1)
	if end.Line == start.Line {
		end.Col++
	} else {
		end = diag.Pos{Line: start.Line, Col: start.Col + 1}
	}
	return diag.Range{File: e.file, Start: start, End: end}
}
