package tokenizer_test

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/tokenizer"
)

func Example() {
	// A tiny SentencePiece-style vocabulary: merges are chosen by score.
	v := tokenizer.Vocab{
		Model:  tokenizer.ModelLlama,
		Tokens: []string{"<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "▁hi"},
		Scores: []float32{0, 0, 0, -1, -2, -3, -4, -5},
		Types: []int32{tokenizer.TypeUnknown, tokenizer.TypeControl, tokenizer.TypeControl,
			1, 1, 1, 1, 1},
		UNK: 0, BOS: 1, EOS: 2, PAD: tokenizer.NoToken,
		AddBOS: true, AddSpacePrefix: true,
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("hi hi", tokenizer.EncodeOptions{AddBOS: tok.AddBOS()})
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Decode(ids))
	// Output:
	// [1 7 7]
	// "hi hi"
}
