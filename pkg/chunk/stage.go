package chunk

import (
	"context"
	"fmt"
	"os"
	"unicode/utf8"

	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

func init() { pipeline.Register(recipe.KindChunk, chunkKind{}) }

// chunkKind is the "chunk" stage kind: raw text → examples.
type chunkKind struct{}

func (chunkKind) Uses() pipeline.Uses { return pipeline.Uses{Model: true} }

func (chunkKind) Run(ctx context.Context, rc *pipeline.RunContext) error {
	s := rc.Stage.Chunk
	in, err := rc.InputMain(s.Input)
	if err != nil {
		return err
	}
	if rc.Model == "" {
		return fmt.Errorf("the chunk stage needs the recipe's model for its tokenizer, and there is none (hint: set model.source)")
	}
	t, err := tokenizer.Load(rc.Model)
	if err != nil {
		return err
	}
	st, err := Build(ctx, in, examples.FromTokenizer(t), StageOptions(s), rc.Out)
	if err != nil {
		return err
	}
	rc.SetMain(examples.TrainFile)
	rc.Summarize(examples.Summary(st))
	examples.Report(rc.Log, st)
	return nil
}

// StageOptions converts the recipe's chunk keys.
func StageOptions(s *recipe.Chunk) Options {
	return Options{
		CutoffLen:       s.CutoffLen,
		OverlapLen:      s.OverlapLen,
		NewlineFavorLen: s.NewlineFavorLen,
		HardCut:         s.HardCutString,
		MinChars:        s.MinChars,
		AddBOS:          s.AddBOS,
		AddEOS:          s.AddEOS,
	}
}

// planBytes is how much text `lora plan` tokenizes to estimate the counts.
const planBytes = 64 << 10

// Plan describes the stage for `lora plan` and, when the input and the
// model are in the cache, estimates tokens and examples from the start of
// the text.
func (chunkKind) Plan(ctx context.Context, pc *pipeline.PlanContext) ([]string, error) {
	s := pc.Stage.Chunk
	o := StageOptions(s)
	lines := []string{fmt.Sprintf("chunk %s: cutoff_len %d, overlap_len %d, newline_favor_len %d, hard cut %q, min_chars %d", s.Input, s.CutoffLen, s.OverlapLen, s.NewlineFavorLen, HardCut(s.HardCutString), s.MinChars)}
	dir, ok := pc.Inputs[s.Input]
	if !ok || pc.Model == "" {
		return append(lines, "example and token counts: known once the input and the model are fetched"), nil
	}
	out, err := pipeline.ReadOutput(dir)
	if err != nil {
		return lines, err
	}
	files, err := Files(out.MainPath(dir))
	if err != nil {
		return lines, err
	}
	t, err := tokenizer.Load(pc.Model)
	if err != nil {
		return lines, err
	}
	var total int64
	var head []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return lines, err
		}
		total += int64(len(b))
		if len(head) < planBytes {
			head = append(head, b[:min(len(b), planBytes-len(head))]...)
		}
	}
	for len(head) > 0 && !utf8.Valid(head) {
		head = head[:len(head)-1] // a character cut at the sample's end
	}
	if len(head) == 0 {
		return append(lines, "the text is empty"), nil
	}
	tok := examples.FromTokenizer(t)
	width, err := o.check(tok.BOS() >= 0)
	if err != nil {
		return lines, err
	}
	n := int64(len(tok.Encode(string(head), tokenizer.EncodeOptions{})))
	tokens := n * total / int64(len(head))
	step := int64(width - o.OverlapLen)
	windows := int64(1)
	if tokens > int64(width) {
		windows += (tokens - int64(width) + step - 1) / step
	}
	lines = append(lines, fmt.Sprintf("%d bytes in %d file(s) → ≈%d tokens, ≈%d examples of up to %d tokens (estimated from the first %d bytes; hard cuts add windows)",
		total, len(files), tokens, windows, s.CutoffLen, len(head)))
	return lines, ctx.Err()
}
