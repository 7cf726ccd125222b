package recipe

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Expression environments. Field tags name the identifiers.

// TrainEnv is what a train stage's stop_when sees, after every step.
type TrainEnv struct {
	Loss           float64 `expr:"loss" doc:"training loss of the last step"`
	Step           int     `expr:"step" doc:"optimizer steps done"`
	Epoch          float64 `expr:"epoch" doc:"fractional epochs done"`
	LR             float64 `expr:"lr" doc:"learning rate of the last step"`
	GradNorm       float64 `expr:"grad_norm" doc:"gradient norm before clipping"`
	Tokens         int     `expr:"tokens" doc:"training tokens seen"`
	EvalLoss       float64 `expr:"eval_loss" doc:"last held-out loss (NaN before the first eval)"`
	EvalPerplexity float64 `expr:"eval_perplexity" doc:"exp(eval_loss)"`
}

// EvalEnv is what an evaluate stage's gate sees.
type EvalEnv struct {
	Perplexity        float64 `expr:"perplexity" doc:"of the adapter on perplexity.text"`
	HeldoutLoss       float64 `expr:"heldout_loss" doc:"mean loss on the held-out examples"`
	HeldoutPerplexity float64 `expr:"heldout_perplexity" doc:"exp(heldout_loss)"`
	BasePerplexity    float64 `expr:"base_perplexity" doc:"of the base model (compare_base)"`
	BaseHeldoutLoss   float64 `expr:"base_heldout_loss" doc:"of the base model (compare_base)"`
	Tokens            int     `expr:"tokens" doc:"tokens scored"`
}

// StageMetrics is what `when` sees of a finished stage as stages.<name>.
type StageMetrics struct {
	Skipped           bool    `expr:"skipped" doc:"its own when was false"`
	Cached            bool    `expr:"cached" doc:"reused from the store"`
	Passed            bool    `expr:"passed" doc:"evaluate: the gate held (true without a gate)"`
	Records           int     `expr:"records" doc:"fetch/format: records read"`
	Examples          int     `expr:"examples" doc:"format/chunk: examples made"`
	Steps             int     `expr:"steps" doc:"train: optimizer steps done"`
	Tokens            int     `expr:"tokens" doc:"format/chunk/train: tokens"`
	Loss              float64 `expr:"loss" doc:"train: final training loss"`
	EvalLoss          float64 `expr:"eval_loss" doc:"train: final held-out loss"`
	Perplexity        float64 `expr:"perplexity" doc:"evaluate"`
	HeldoutLoss       float64 `expr:"heldout_loss" doc:"evaluate"`
	HeldoutPerplexity float64 `expr:"heldout_perplexity" doc:"evaluate"`
	BasePerplexity    float64 `expr:"base_perplexity" doc:"evaluate"`
}

// Params is what `when` sees as params.
type Params struct {
	Name   string            `expr:"name" doc:"the recipe name"`
	Seed   int               `expr:"seed" doc:"the recipe seed"`
	Device string            `expr:"device" doc:"the recipe device"`
	Set    map[string]string `expr:"set" doc:"--set overrides, path → value as written"`
}

// WhenEnv is what a stage's when sees.
type WhenEnv struct {
	Stages map[string]StageMetrics `expr:"stages"`
	Params Params                  `expr:"params"`
}

// Gate kinds for CompileGate.
const (
	GateStopWhen = "stop_when" // TrainEnv
	GateEval     = "gate"      // EvalEnv
	GateWhen     = "when"      // WhenEnv
)

// Gate is a compiled boolean expression.
type Gate struct {
	Src  string
	kind string
	prog *vm.Program
}

// disabled are builtins whose result depends on the clock or the machine:
// a gate must give the same answer on every rerun.
var disabled = []string{"now", "date", "timezone"}

func envFor(kind string) (any, error) {
	switch kind {
	case GateStopWhen:
		return TrainEnv{}, nil
	case GateEval:
		return EvalEnv{}, nil
	case GateWhen:
		return WhenEnv{}, nil
	}
	return nil, fmt.Errorf("unknown gate kind %q (want %s, %s or %s)", kind, GateStopWhen, GateEval, GateWhen)
}

// ExprError is a compile error of an expression, at a rune offset of its source.
type ExprError struct {
	Offset  int    // rune offset in the expression
	Length  int    // runes the error spans (at least 1)
	Message string // without position
	Hint    string
}

func (e *ExprError) Error() string { return fmt.Sprintf("%s (at character %d)", e.Message, e.Offset+1) }

// CompileGate compiles src as a boolean expression of kind (GateStopWhen,
// GateEval or GateWhen). Errors are *ExprError.
func CompileGate(kind, src string) (*Gate, error) {
	return compileGate(kind, src, nil)
}

func compileGate(kind, src string, stages []string) (*Gate, error) {
	env, err := envFor(kind)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Length: 1, Message: "the expression is empty", Hint: "write a condition such as " + example(kind)}
	}
	opts := []expr.Option{expr.Env(env), expr.AsBool(), expr.Optimize(false)}
	for _, b := range disabled {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	var stageErr *ExprError
	if kind == GateWhen && stages != nil {
		opts = append(opts, expr.Patch(&stageChecker{stages: stages, err: &stageErr}))
	}
	prog, err := expr.Compile(src, opts...)
	if stageErr != nil {
		return nil, stageErr
	}
	if err != nil {
		return nil, exprError(kind, src, err)
	}
	return &Gate{Src: src, kind: kind, prog: prog}, nil
}

// Eval runs the gate against env, which must be the kind's environment
// (TrainEnv, EvalEnv or WhenEnv).
func (g *Gate) Eval(env any) (bool, error) {
	want, _ := envFor(g.kind)
	if reflect.TypeOf(env) != reflect.TypeOf(want) {
		return false, fmt.Errorf("gate %q: environment is %T, want %T", g.Src, env, want)
	}
	out, err := expr.Run(g.prog, env)
	if err != nil {
		return false, fmt.Errorf("gate %q: %w", g.Src, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("gate %q: result is %T, not bool", g.Src, out)
	}
	return b, nil
}

func example(kind string) string {
	switch kind {
	case GateStopWhen:
		return "loss < 1.0"
	case GateEval:
		return "perplexity < 40"
	}
	return "stages.eval.perplexity > 20"
}

// names returns the identifiers of an environment type.
func names(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if n := t.Field(i).Tag.Get("expr"); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// exprError turns an expr compile error into an ExprError with a hint.
func exprError(kind, src string, err error) *ExprError {
	msg := err.Error()
	e := &ExprError{Length: 1, Message: msg}
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		e = &ExprError{Offset: fe.From, Length: max(1, fe.To-fe.From), Message: msg}
	}
	env, _ := envFor(kind)
	switch {
	case strings.HasPrefix(msg, "unknown name "):
		name := strings.TrimSpace(strings.TrimPrefix(msg, "unknown name "))
		e.Length = len([]rune(name))
		if slices.Contains(disabled, name) {
			e.Message = fmt.Sprintf("%s() is not allowed: gates must give the same answer on every run", name)
			e.Hint = "use training metrics instead of the clock"
			break
		}
		e.Message = fmt.Sprintf("unknown name %s in %s", name, kind)
		all := names(reflect.TypeOf(env))
		if s := suggest(name, all); s != "" {
			e.Hint = fmt.Sprintf("did you mean %s? known names: %s", s, strings.Join(all, ", "))
		} else {
			e.Hint = "known names: " + strings.Join(all, ", ")
		}
	case strings.Contains(msg, "expected bool"):
		e.Offset, e.Length = 0, len([]rune(src))
		e.Message = fmt.Sprintf("%s must be true or false, but %s", kind, strings.TrimPrefix(msg, "expected bool, but got "))
		e.Message = strings.Replace(e.Message, "but ", "this gives ", 1)
		e.Hint = "compare it, e.g. " + example(kind)
	case strings.Contains(msg, "has no field"):
		field := msg[strings.LastIndex(msg, " ")+1:]
		e.Message = fmt.Sprintf("%s: a stage has no metric %s", kind, field)
		e.Length = len([]rune(field))
		all := names(reflect.TypeFor[StageMetrics]())
		e.Hint = "known metrics of a stage: " + strings.Join(all, ", ")
		if s := suggest(field, all); s != "" {
			e.Hint = fmt.Sprintf("did you mean %s? %s", s, e.Hint)
		}
	case strings.HasPrefix(msg, "unexpected token") || strings.HasPrefix(msg, "unexpected end") || strings.Contains(msg, "unexpected"):
		e.Message = kind + ": syntax error: " + strings.Replace(msg, "token EOF", "end of the expression", 1)
		e.Hint = "complete the expression, e.g. " + example(kind) + "; see https://expr-lang.org/docs/language-definition"
	case strings.Contains(msg, "mismatched types") || strings.Contains(msg, "invalid operation"):
		e.Message = kind + ": " + msg
		e.Hint = "compare numbers with numbers, e.g. " + example(kind)
	default:
		e.Message = kind + ": " + msg
	}
	if e.Offset < 0 || e.Offset > len([]rune(src)) {
		e.Offset = 0
	}
	return e
}

// stageChecker rejects stages.<name> for a stage the expression may not see.
type stageChecker struct {
	stages []string
	err    **ExprError
}

func (c *stageChecker) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || *c.err != nil {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "stages" {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	if slices.Contains(c.stages, prop.Value) {
		return
	}
	loc := m.Property.Location()
	e := &ExprError{Offset: loc.From, Length: max(1, len([]rune(prop.Value))),
		Message: fmt.Sprintf("when refers to stage %q, which this stage does not need", prop.Value)}
	if s := suggest(prop.Value, c.stages); s != "" {
		e.Hint = fmt.Sprintf("did you mean %s?", s)
	} else {
		e.Hint = fmt.Sprintf("add %s to this stage's needs so that it runs first", prop.Value)
	}
	*c.err = e
}

// identifiers returns the top-level names an expression uses (loss, step,
// stages, ...), without member names; nil when it does not parse.
func identifiers(src string) map[string]int {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &identVisitor{names: map[string]int{}}
	ast.Walk(&tree.Node, v)
	return v.names
}

type identVisitor struct{ names map[string]int }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		if _, seen := v.names[id.Value]; !seen {
			v.names[id.Value] = id.Location().From
		}
	}
}
