package evaluate

import (
	"math"
	"strings"
	"testing"
)

func TestMarkdownShowsBaseAndAdapterSideBySide(t *testing.T) {
	r := &Result{Perplexity: 12.5, PerplexityWindows: 13, BasePerplexity: 20.25, HeldoutLoss: 2, HeldoutPerplexity: math.Exp(2),
		BaseHeldoutLoss: math.NaN(), Tokens: 100, Gate: "perplexity < 10", Passed: false, Adapter: "train", Device: "cpu",
		Samples: []Sample{{Prompt: "User: hi", Model: "base", Text: "x"}, {Prompt: "User: hi", Model: "adapter", Text: "y", Temperature: 0.7, Seed: 3}}}
	md := Markdown("alpaca-chat", "eval", r, "loss.png")
	for _, want := range []string{
		"| perplexity (token-weighted) | 20.2500 | 12.5000 |",
		"| held-out loss | – | 2.0000 |",
		"Gate `perplexity < 10`: **NOT met**",
		"![loss](loss.png)",
		"**base** (greedy",
		"**adapter** (temperature 0.7, seed 3",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownLeavesOutUnmeasuredRows(t *testing.T) {
	nan := math.NaN()
	r := &Result{Perplexity: nan, PerplexityWindows: nan, BasePerplexity: nan, HeldoutLoss: 2, HeldoutPerplexity: math.Exp(2),
		BaseHeldoutLoss: 2.5, Adapter: "train", Device: "cpu", Passed: true}
	md := Markdown("r", "eval", r, "")
	if strings.Contains(md, "perplexity (token-weighted)") {
		t.Errorf("report shows an unmeasured perplexity row:\n%s", md)
	}
	if !strings.Contains(md, "| held-out loss | 2.5000 | 2.0000 |") {
		t.Errorf("report lacks the held-out row:\n%s", md)
	}
}
