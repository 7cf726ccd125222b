// Package formatstage registers the recipe's format stage kind with the pipeline.
package formatstage

import (
	"context"
	"errors"
	"fmt"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

func init() { pipeline.Register(recipe.KindFormat, formatKind{}) }

// evalSeed picks held-out examples. It is fixed, not the recipe seed, so
// that changing the seed reuses the format stage and keeps the split.
const evalSeed = 0x10a5eed

// formatKind is the "format" stage kind: records → examples.
type formatKind struct{}

func (formatKind) Uses() pipeline.Uses { return pipeline.Uses{Model: true} }

func (formatKind) Run(ctx context.Context, rc *pipeline.RunContext) error {
	s := rc.Stage.Format
	in, err := rc.InputMain(s.Input)
	if err != nil {
		return err
	}
	f, err := Format(rc.Recipe, s.Format)
	if err != nil {
		return err
	}
	tok, err := Tokenizer(rc.Model)
	if err != nil {
		return err
	}
	st, err := dataset.Build(ctx, in, f, tok, Options(s), rc.Out)
	if err != nil {
		return renameFile(err, in, sourceOf(rc, s.Input))
	}
	rc.SetMain(examples.TrainFile)
	rc.Summarize(examples.Summary(st))
	examples.Report(rc.Log, st)
	return nil
}

// Format loads a format stage's format: a built-in name, or a path
// relative to the recipe.
func Format(r *recipe.Recipe, name string) (*dataset.Format, error) {
	if f, ok := dataset.Builtin(name); ok {
		return f, nil
	}
	return dataset.LoadFormat(r.Resolve(name))
}

// Options converts the recipe's format keys.
func Options(s *recipe.Format) dataset.Options {
	return dataset.Options{
		TrainOn:       s.TrainOn,
		ResponseField: s.ResponseField,
		AddEOS:        s.AddEOS,
		CutoffLen:     s.CutoffLen,
		Overflow:      s.Overflow,
		SkipUnmatched: s.SkipUnmatched,
		EvalSplit:     s.EvalSplit,
		Seed:          evalSeed,
	}
}

// Tokenizer loads the tokenizer of the model file (GGUF or Hugging Face).
func Tokenizer(model string) (examples.Tokenizer, error) {
	if model == "" {
		return nil, fmt.Errorf("the stage needs the recipe's model for its tokenizer, and there is none (hint: set model.source)")
	}
	t, err := tokenizer.Load(model)
	if err != nil {
		return nil, err
	}
	return examples.FromTokenizer(t), nil
}

// sourceOf returns what the input stage fetched (a URL or a local path), or "".
func sourceOf(rc *pipeline.RunContext, input string) string {
	o, err := rc.InputOutput(input)
	if err != nil || o.Source == nil {
		return ""
	}
	return o.Source.Source
}

// renameFile makes a diagnostic about the stage's copy of the dataset name
// the source the user wrote instead (same bytes: the fetch checked them), so
// that file:line:col points somewhere the user can open.
func renameFile(err error, copyPath, source string) error {
	var d diag.Diagnostic
	if source == "" || !errors.As(err, &d) || d.Range.File != copyPath {
		return err
	}
	d.Range.File = source
	return d
}

// planSample is how many records `lora plan` formats to estimate the counts.
const planSample = 256

// Plan describes the stage for `lora plan` and, when the input and the model
// are in the cache, estimates the examples and tokens per epoch from a
// sample of the records.
func (formatKind) Plan(ctx context.Context, pc *pipeline.PlanContext) ([]string, error) {
	s := pc.Stage.Format
	lines := []string{fmt.Sprintf("format %s with %s: train_on %s, cutoff_len %d (overflow: %s), add_eos %v", s.Input, s.Format, s.TrainOn, s.CutoffLen, s.Overflow, s.AddEOS)}
	dir, ok := pc.Inputs[s.Input]
	if !ok || pc.Model == "" {
		return append(lines, "example and token counts: known once the input and the model are fetched"), nil
	}
	o, err := pipeline.ReadOutput(dir)
	if err != nil {
		return lines, err
	}
	f, err := Format(pc.Recipe, s.Format)
	if err != nil {
		return lines, err
	}
	tok, err := Tokenizer(pc.Model)
	if err != nil {
		return lines, err
	}
	st, total, err := dataset.Sample(o.MainPath(dir), f, tok, Options(s), planSample)
	if err != nil {
		return lines, err
	}
	if st.Records == 0 {
		return append(lines, "the dataset has no records"), nil
	}
	scale := float64(total) / float64(st.Records)
	est := func(n int64) int64 { return int64(float64(n)*scale + 0.5) }
	how := "all records"
	if st.Records < total {
		how = fmt.Sprintf("estimated from the first %d", st.Records)
	}
	lines = append(lines, fmt.Sprintf("%d records → ≈%d examples, ≈%d tokens (%d trained) before any eval split; %d%% truncated, %d%% dropped (%s)",
		total, est(int64(st.Examples)), est(st.Tokens), est(st.TrainedTokens),
		100*st.Truncated/st.Records, 100*st.Dropped/st.Records, how))
	for _, d := range examples.Warnings(st, "") {
		lines = append(lines, d.Severity.String()+": "+d.Message)
	}
	return lines, ctx.Err()
}
