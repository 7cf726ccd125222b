package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/lora-dev/lora/pkg/device"
)

func needVulkan(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("lavapipe is slow")
	}
	be, _, err := device.Open("vulkan")
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	be.Close()
}

// Karpathy's greedy text, all 256 tokens, through the Vulkan backend.
func TestGenerateStoriesGreedyVulkanFull(t *testing.T) {
	m := storiesPath(t)
	needVulkan(t)
	want, err := os.ReadFile(filepath.Join(filepath.Dir(m), "stories260K.greedy-t0.expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runLora(t, "generate", "--model", m, "--prompt", "", "--max-tokens", "256", "--temperature", "0", "--device", "vulkan", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out != string(want) {
		t.Fatalf("vulkan output differs from stories260K.greedy-t0.expected.txt:\n got: %q\nwant: %q", out, want)
	}
}

// lora eval --device vulkan equals --device cpu to 1e-4 relative, for an f32
// and a q4_0 base.
func TestEvalVulkanMatchesCPU(t *testing.T) {
	m := storiesPath(t)
	needVulkan(t)
	raw, err := os.ReadFile(filepath.Join(sharedData(), "datasets", "tinyshakespeare", "input.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(tf, raw[:1500], 0o644); err != nil {
		t.Fatal(err)
	}
	eval := func(dev, quant string) map[string]float64 {
		out, errs, code := runLora(t, "eval", "--model", m, "--text", tf, "--ctx", "64", "--stride", "32", "--json", "--quantize", quant, "--device", dev)
		if code != 0 {
			t.Fatalf("eval %s %s: exit %d: %s", dev, quant, code, errs)
		}
		var rep map[string]any
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		return map[string]float64{"perplexity": rep["perplexity"].(float64), "tokens": rep["tokens"].(float64),
			"perplexity_window_mean": rep["perplexity_window_mean"].(float64)}
	}
	for _, q := range []string{"none", "q4_0"} {
		cpu, vk := eval("cpu", q), eval("vulkan", q)
		t.Logf("%s: cpu perplexity %.6f, vulkan %.6f over %v tokens", q, cpu["perplexity"], vk["perplexity"], cpu["tokens"])
		if cpu["tokens"] != vk["tokens"] {
			t.Errorf("%s: tokens %v vs %v", q, cpu["tokens"], vk["tokens"])
		}
		for _, k := range []string{"perplexity", "perplexity_window_mean"} {
			if rel := math.Abs(cpu[k]-vk[k]) / cpu[k]; rel > 1e-4 {
				t.Errorf("%s %s: cpu %.7f vs vulkan %.7f (rel %.2g)", q, k, cpu[k], vk[k], rel)
			}
		}
	}
}
