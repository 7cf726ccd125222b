package evaluate

import (
	"fmt"
	"math"
	"strings"
)

// Markdown renders the evaluation report: the measurements (base and adapter
// side by side), the gate, the loss plot and the samples.
func Markdown(recipeName, stage string, r *Result, plot string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Evaluation: %s / %s\n\n", recipeName, stage)
	fmt.Fprintf(&b, "Adapter of stage `%s`, measured on %s.\n\n", r.Adapter, r.Device)
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.4f", v)
	}
	b.WriteString("| metric | base | base + adapter |\n|---|---:|---:|\n")
	row := func(name string, base, adapted float64) {
		if !math.IsNaN(base) || !math.IsNaN(adapted) {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", name, f(base), f(adapted))
		}
	}
	row("perplexity (token-weighted)", r.BasePerplexity, r.Perplexity)
	row("held-out loss", r.BaseHeldoutLoss, r.HeldoutLoss)
	bhp := math.NaN()
	if !math.IsNaN(r.BaseHeldoutLoss) {
		bhp = math.Exp(r.BaseHeldoutLoss)
	}
	row("held-out perplexity", bhp, r.HeldoutPerplexity)
	if !math.IsNaN(r.PerplexityWindows) {
		fmt.Fprintf(&b, "| perplexity (mean of windows) | | %s |\n", f(r.PerplexityWindows))
	}
	var notes []string
	if r.Tokens > 0 {
		notes = append(notes, fmt.Sprintf("Perplexity scored %d tokens.", r.Tokens))
	}
	if r.HeldoutTokens > 0 {
		notes = append(notes, fmt.Sprintf("Held-out loss scored %d trained tokens.", r.HeldoutTokens))
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, " ") + "\n")
	}
	b.WriteString("\n")
	if r.Gate != "" {
		verdict := "**passed**"
		if !r.Passed {
			verdict = "**NOT met** (the run exits 3)"
		}
		fmt.Fprintf(&b, "Gate `%s`: %s.\n\n", r.Gate, verdict)
	}
	if plot != "" {
		fmt.Fprintf(&b, "## Training loss\n\n![loss](%s)\n\n", plot)
	}
	if len(r.Samples) > 0 {
		b.WriteString("## Samples\n\n")
		for _, prompt := range uniquePrompts(r.Samples) {
			fmt.Fprintf(&b, "### Prompt\n\n```\n%s\n```\n\n", prompt)
			for _, s := range r.Samples {
				if s.Prompt != prompt {
					continue
				}
				how := "greedy"
				if s.Temperature > 0 {
					how = fmt.Sprintf("temperature %g, seed %d", s.Temperature, s.Seed)
				}
				fmt.Fprintf(&b, "**%s** (%s, %d tokens):\n\n```\n%s\n```\n\n", s.Model, how, s.Tokens, s.Text)
			}
		}
	}
	return b.String()
}

func uniquePrompts(ss []Sample) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s.Prompt] {
			seen[s.Prompt] = true
			out = append(out, s.Prompt)
		}
	}
	return out
}
