package chunk

import (
	"context"
	"fmt"

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
