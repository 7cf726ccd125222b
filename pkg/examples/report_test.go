package examples_test

import (
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/examples"
)

func TestWarningsAndReport(t *testing.T) {
	for _, tc := range []struct {
		st   examples.Stats
		want string
	}{
		{examples.Stats{Examples: 10, Truncated: 5, NoTrained: 5}, ""},
		{examples.Stats{Examples: 10, Truncated: 6}, "mostly-truncated"},
		{examples.Stats{Examples: 10, NoTrained: 6, UnmatchedSkipped: 1}, "mostly-untrained unmatched-skipped"},
		{examples.Stats{}, ""},
	} {
		var got []string
		for _, d := range examples.Warnings(tc.st, "d.json") {
			got = append(got, d.Code)
			if d.Range.File != "d.json" || d.Hint == "" && d.Code != "unmatched-skipped" {
				t.Errorf("diagnostic %+v", d)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: warnings %v, want %q", tc.st, got, tc.want)
		}
	}
	var b strings.Builder
	examples.Report(&b, examples.Stats{Kind: "chunk", Records: 3, Examples: 7, Tokens: 70, TrainedTokens: 63, ShortSkipped: 1})
	if want := "7 examples from 3 text blocks: 70 tokens, 63 trained; 0 truncated, 0 dropped, 1 short blocks skipped\n"; b.String() != want {
		t.Errorf("Report = %q, want %q", b.String(), want)
	}
}
