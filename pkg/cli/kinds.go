package cli

// The stage kinds register themselves with the pipeline when imported; the
// CLI is the one place that links them all in.
import (
	_ "github.com/lora-dev/lora/pkg/chunk"
	_ "github.com/lora-dev/lora/pkg/dataset/formatstage"
	_ "github.com/lora-dev/lora/pkg/evaluate"
	_ "github.com/lora-dev/lora/pkg/train"
)
