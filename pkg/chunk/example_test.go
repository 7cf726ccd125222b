package chunk_test

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/chunk"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/examples/examplestest"
)

func ExampleWindows() {
	text := "one two three\nfour five six seven eight"
	tok := &examplestest.Fake{} // one token per word, newline or space
	toks := examples.Encode(tok, text)
	// 5 tokens a window, 3 shared, a start may move up to 10 characters to
	// follow a newline.
	for _, w := range chunk.Windows(text, toks, 5, 3, 10) {
		fmt.Printf("%v %q\n", w.Moved, text[toks.Start(w.Start):toks.Ends[w.End-1]])
	}
	// Output:
	// false "one two three\nfour"
	// true "four five six seven eight"
}
