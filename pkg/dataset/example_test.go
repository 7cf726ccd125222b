package dataset_test

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/dataset"
)

func ExampleTemplate_Render() {
	f, _ := dataset.ParseFormat("chat.json", []byte(`{"instruction,output": "User: %instruction%\nAssistant: %output%"}`))
	rec := dataset.Record{Fields: map[string]string{"instruction": "Spell %output%", "output": "o-u-t", "input": ""}}
	t := f.Match(rec) // the empty input does not count
	r := t.Render(rec.Fields, "output")
	fmt.Printf("%q\ntrained from byte %d: %q\n", r.Text, r.ResponseAt, r.Text[r.ResponseAt:])
	// Output:
	// "User: Spell %output%\nAssistant: o-u-t"
	// trained from byte 32: "o-u-t"
}
