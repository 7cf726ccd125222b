package examples

import (
	"fmt"
	"io"

	"github.com/lora-dev/lora/pkg/diag"
)

// Summary is the stage summary of examples stats (stage.json metrics, and
// stages.<name>.<key> in later when: expressions).
func Summary(st Stats) map[string]any {
	return map[string]any{
		"records":           st.Records,
		"examples":          st.Examples,
		"tokens":            st.Tokens,
		"trained_tokens":    st.TrainedTokens,
		"max_len":           st.MaxLen,
		"no_trained":        st.NoTrained,
		"truncated":         st.Truncated,
		"dropped":           st.Dropped,
		"unmatched_skipped": st.UnmatchedSkipped,
		"short_skipped":     st.ShortSkipped,
		"eval_examples":     st.EvalExamples,
	}
}

// Report writes the counts and warnings of a finished stage to w.
func Report(w io.Writer, st Stats) {
	unit := "records"
	if st.Kind == "chunk" {
		unit = "text blocks"
	}
	fmt.Fprintf(w, "%d examples from %d %s: %d tokens, %d trained", st.Examples, st.Records, unit, st.Tokens, st.TrainedTokens)
	if st.EvalExamples > 0 {
		fmt.Fprintf(w, "; %d held out", st.EvalExamples)
	}
	fmt.Fprintf(w, "; %d truncated, %d dropped", st.Truncated, st.Dropped)
	if st.UnmatchedSkipped > 0 {
		fmt.Fprintf(w, ", %d unmatched skipped", st.UnmatchedSkipped)
	}
	if st.ShortSkipped > 0 {
		fmt.Fprintf(w, ", %d short blocks skipped", st.ShortSkipped)
	}
	if st.NoTrained > 0 {
		fmt.Fprintf(w, ", %d with no trained token", st.NoTrained)
	}
	fmt.Fprintln(w)
	for _, d := range Warnings(st, "") {
		fmt.Fprintln(w, d.Error())
	}
}

// Warnings flags examples stats that mean training would learn little: most
// examples truncated at the cutoff, most with no trained token, or records
// skipped. file names the dataset in the diagnostics.
func Warnings(st Stats, file string) diag.List {
	var ds diag.List
	n := st.Examples // truncated examples are among them
	r := diag.Range{File: file}
	if n > 0 && 2*st.Truncated > n {
		ds.Add(diag.Warningf(r, "mostly-truncated", "%d of %d examples (%.0f%%) are longer than cutoff_len and were truncated", st.Truncated, n, 100*float64(st.Truncated)/float64(n)).
			WithHint("raise cutoff_len, or use overflow: drop to leave them out"))
	}
	if n > 0 && 2*st.NoTrained > n {
		ds.Add(diag.Warningf(r, "mostly-untrained", "%d of %d examples (%.0f%%) have no trained token: nothing to learn from them", st.NoTrained, n, 100*float64(st.NoTrained)/float64(n)).
			WithHint("the prompt fills cutoff_len before the response starts: raise cutoff_len, shorten the template, or train_on: all"))
	}
	if st.UnmatchedSkipped > 0 {
		ds.Add(diag.Warningf(r, "unmatched-skipped", "%d records matched no template and were skipped", st.UnmatchedSkipped))
	}
	return ds
}
