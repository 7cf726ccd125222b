package dataset_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/examples"
)

func codes(ds diag.List) string {
	var c []string
	for _, d := range ds {
		c = append(c, fmt.Sprintf("%s:%s", d.Severity, d.Code))
	}
	return strings.Join(c, " ")
}

func TestCheck(t *testing.T) {
	alpaca := sharedData(t, "datasets/alpaca/alpaca_5000.json")
	raw := readString(t, alpaca)
	f, _ := dataset.Builtin("alpaca")
	ds := dataset.Check(alpaca, f, 0)
	if codes(ds) != "error:unmatched-record" {
		t.Fatalf("diagnostics %v", ds)
	}
	d := ds[0]
	// The file is one line: the column is the record's character offset + 1.
	recStart := strings.Index(raw, `{"instruction": "Retrieve the following data from the World Bank`)
	if d.Range.Start.Line != 1 || d.Range.Start.Col != len([]rune(raw[:recStart]))+1 ||
		!strings.Contains(d.Message, "2 of 5000 records checked have fields {instruction} (the first is record 2335)") {
		t.Errorf("diagnostic %v (want col %d)", d, recStart+1)
	}
	// Sampling the first 100 records does not reach record 2335.
	if ds := dataset.Check(alpaca, f, 100); len(ds) != 0 {
		t.Errorf("sampled check: %v", ds)
	}
	// Vicuna has no template with an input: two field sets are unmatched.
	v, _ := dataset.Builtin("vicuna")
	ds = dataset.Check(alpaca, v, 0)
	if len(ds) != 2 || !strings.Contains(ds[0].Message, "1943 of 5000 records checked have fields {input,instruction,output}") {
		t.Errorf("vicuna: %v", ds)
	}
	ds = dataset.Check(sharedData(t, "datasets/alpaca/seed_tasks.jsonl"), f, 10)
	if codes(ds) != "error:field-type" {
		t.Errorf("seed tasks: %v", ds)
	}
}

func TestCheckExamples(t *testing.T) {
	alpaca := sharedData(t, "datasets/alpaca/alpaca_5000.json")
	tok := examples.FromTokenizer(realTokenizer(t))
	f, _ := dataset.Builtin("alpaca")
	for _, tc := range []struct {
		cutoff int
		want   string
	}{
		// With stories260K's 512-token vocabulary the first 200 alpaca
		// prompts are 112 to 393 tokens long (median 144), whole examples
		// 124 to 1156 (median 280).
		{2048, ""},
		{200, "warning:mostly-truncated"},
		{100, "warning:mostly-truncated warning:mostly-untrained"},
	} {
		ds := dataset.CheckExamples(alpaca, f, tok, opts(func(o *dataset.Options) { o.CutoffLen = tc.cutoff }), 200)
		if codes(ds) != tc.want {
			t.Errorf("cutoff %d: %v, want %s", tc.cutoff, ds, tc.want)
		}
	}
	ds := dataset.CheckExamples(alpaca, f, tok, opts(func(o *dataset.Options) { o.CutoffLen = 100; o.Overflow = "drop" }), 50)
	if codes(ds) != "warning:all-dropped" {
		t.Errorf("drop: %v", ds)
	}
}
