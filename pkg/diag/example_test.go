package diag_test

import (
	"os"

	"github.com/lora-dev/lora/pkg/diag"
)

func ExampleText_Write() {
	src := []byte("version: 1\noptimizer:\n  learning_rate: 3e-4\n")
	ds := diag.List{
		diag.Errorf(diag.Range{File: "r.yaml", Start: diag.Pos{Line: 3, Col: 3}, End: diag.Pos{Line: 3, Col: 16}},
			"unknown-key", "unknown key %q in optimizer", "learning_rate").WithHint("did you mean lr?"),
	}
	diag.Text{Sources: map[string][]byte{"r.yaml": src}}.Write(os.Stdout, ds)
	// Output:
	// r.yaml:3:3: error: unknown key "learning_rate" in optimizer
	//  3 |   learning_rate: 3e-4
	//    |   ^^^^^^^^^^^^^
	// hint: did you mean lr?
}
