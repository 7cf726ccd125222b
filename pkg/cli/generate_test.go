package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

// runLora runs the CLI in-process and returns stdout, stderr and the exit code.
func runLora(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func storiesPath(t *testing.T) string {
	t.Helper()
	sh := sharedData()
	if sh == "" {
		t.Skip("../shared/data is absent: fetch it to run this test")
	}
	return filepath.Join(sh, "models", "stories260K.gguf")
}

// TestGenerateStoriesGreedy: Karpathy's published greedy output, byte for byte.
func TestGenerateStoriesGreedy(t *testing.T) {
	m := storiesPath(t)
	want, err := os.ReadFile(filepath.Join(filepath.Dir(m), "stories260K.greedy-t0.expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runLora(t, "generate", "--model", m, "--prompt", "", "--max-tokens", "256", "--temperature", "0", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out != string(want) {
		t.Fatalf("output differs from stories260K.greedy-t0.expected.txt:\n got: %q\nwant: %q", out, want)
	}
}

// TestGenerateStoriesGreedyVulkan runs the same on the Vulkan backend (a
// shorter prefix: lavapipe emulates the GPU on the CPU).
func TestGenerateStoriesGreedyVulkan(t *testing.T) {
	m := storiesPath(t)
	be, _, err := device.Open("vulkan")
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	be.Close()
	want, err := os.ReadFile(filepath.Join(filepath.Dir(m), "stories260K.greedy-t0.expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runLora(t, "generate", "--model", m, "--prompt", "", "--max-tokens", "40", "--temperature", "0", "--device", "vulkan", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	text := strings.TrimSuffix(out, "\n")
	if len(text) < 100 || !strings.HasPrefix(string(want), text) {
		t.Fatalf("vulkan output is not a prefix of the expected text:\n got: %q", out)
	}
}

func TestGenerateSamplingAndPrompt(t *testing.T) {
	m := storiesPath(t)
	args := []string{"generate", "--model", m, "--prompt", "Once upon a time", "--max-tokens", "30", "--temperature", "0.9", "--device", "cpu", "--quiet"}
	a, _, code := runLora(t, append(args, "--seed", "5")...)
	b, _, code2 := runLora(t, append(args, "--seed", "5")...)
	c, _, _ := runLora(t, append(args, "--seed", "6")...)
	if code != 0 || code2 != 0 || a != b {
		t.Fatalf("same seed, different text:\n%q\n%q", a, b)
	}
	if a == c {
		t.Errorf("seeds 5 and 6 gave the same 30 sampled tokens: %q", a)
	}
	if !strings.HasPrefix(a, "Once upon a time") || len(a) < 40 {
		t.Errorf("the prompt is not printed first: %q", a)
	}
}

func TestGenerateUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"generate"},
		{"generate", "--model", "x.gguf", "--device", "tpu"},
		{"generate", "--model", "x.gguf", "--temperature", "-1"},
		{"eval", "--model", "x.gguf"},
		{"inspect"},
	} {
		if _, errs, code := runLora(t, args...); code != ExitInvalid {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errs, ExitInvalid)
		}
	}
	if _, errs, code := runLora(t, "generate", "--model", filepath.Join(t.TempDir(), "missing.gguf")); code != ExitFailed || !strings.Contains(errs, "missing.gguf") {
		t.Errorf("missing model: exit %d, %s", code, errs)
	}
}

// storiesAdapter writes a random GGUF LoRA adapter for stories260K (zero B
// when zero is set) and the same adapter as a PEFT directory.
func storiesAdapter(t *testing.T, modelPath string, zero bool) (ggufPath, peftDir string) {
	t.Helper()
	m, err := model.Load(modelPath, ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for l := range m.Layers {
		for _, mod := range []model.Module{model.Q, model.V, model.Down} {
			out, in := m.Config.Shape(mod)
			a, b := make([]float32, 4*in), make([]float32, out*4)
			for i := range a {
				a[i] = float32(rng.NormFloat64())
			}
			if !zero {
				for i := range b {
					b[i] = float32(rng.NormFloat64() * 0.2)
				}
			}
			if _, err := m.SetLoRA(l, mod, 4, 2, 0, a, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	ad, err := adapter.FromModel(m, adapter.Adapter{Alpha: 8, BaseModel: "stories260K"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ggufPath, peftDir = filepath.Join(dir, "adapter.gguf"), filepath.Join(dir, "peft")
	if err := adapter.SaveGGUF(ggufPath, ad, m.Config); err != nil {
		t.Fatal(err)
	}
	if err := adapter.SavePEFT(peftDir, ad, m.Config); err != nil {
		t.Fatal(err)
	}
	return ggufPath, peftDir
}

func TestGenerateWithAdapter(t *testing.T) {
	m := storiesPath(t)
	base := []string{"generate", "--model", m, "--max-tokens", "40", "--temperature", "0", "--device", "cpu", "--quiet"}
	plain, _, _ := runLora(t, base...)
	zg, zp := storiesAdapter(t, m, true)
	for _, a := range []string{zg, zp} {
		out, errs, code := runLora(t, append(base, "--adapter", a)...)
		if code != 0 || out != plain {
			t.Fatalf("a zero-B adapter (%s) changed the output (exit %d, %s):\n%q\n%q", a, code, errs, out, plain)
		}
	}
	rg, rp := storiesAdapter(t, m, false)
	g, errs, code := runLora(t, append(base, "--adapter", rg)...)
	p, _, _ := runLora(t, append(base, "--adapter", rp)...)
	if code != 0 || g == plain {
		t.Fatalf("a random adapter did not change the output (exit %d, %s)", code, errs)
	}
	if g != p {
		t.Fatalf("the GGUF and PEFT forms of one adapter generate different text:\n%q\n%q", g, p)
	}
}

func TestEvalJSON(t *testing.T) {
	m := storiesPath(t)
	text := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
		"One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
	tf := filepath.Join(t.TempDir(), "heldout.txt")
	if err := os.WriteFile(tf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runLora(t, "eval", "--model", m, "--text", tf, "--ctx", "16", "--stride", "8", "--json", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	// The same evaluation through the library, from the same tokenization.
	tok, err := tokenizer.Load(m)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{AddBOS: true})
	mod, err := model.Load(m, ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	want, err := mod.Perplexity(t.Context(), ids, model.PerplexityOptions{Ctx: 16, Stride: 8})
	if err != nil {
		t.Fatal(err)
	}
	if rep["tokens"].(float64) != float64(len(ids)-1) || rep["tokens"].(float64) != float64(want.Tokens) {
		t.Errorf("tokens %v, want every token after BOS (%d)", rep["tokens"], len(ids)-1)
	}
	if p := rep["perplexity"].(float64); math.Abs(p-want.Perplexity) > 1e-9*want.Perplexity || p < 1 || p > 100 {
		t.Errorf("perplexity %v, library %v", p, want.Perplexity)
	}
	if _, ok := rep["perplexity_window_mean"]; !ok {
		t.Errorf("no perplexity_window_mean in %s", out)
	}
	// A quantized base scores close to the f32 one (stories260K is tiny: within 20%).
	outQ, errs, code := runLora(t, "eval", "--model", m, "--text", tf, "--ctx", "16", "--stride", "8", "--json", "--quantize", "q8_0", "--device", "cpu")
	var repQ map[string]any
	if code != 0 || json.Unmarshal([]byte(outQ), &repQ) != nil {
		t.Fatalf("q8_0 eval: exit %d, %s %s", code, errs, outQ)
	}
	if pq, p := repQ["perplexity"].(float64), rep["perplexity"].(float64); pq == p || math.Abs(pq-p) > 0.2*p {
		t.Errorf("q8_0 perplexity %v vs f32 %v: want close but not identical", pq, p)
	}
	text2, _, code := runLora(t, "eval", "--model", m, "--text", tf, "--ctx", "16", "--device", "cpu")
	if code != 0 || !strings.HasPrefix(text2, "perplexity ") {
		t.Errorf("text output %q", text2)
	}
}

func TestInspect(t *testing.T) {
	m := storiesPath(t)
	out, errs, code := runLora(t, "inspect", m, "--quantize", "q4_0", "--rank", "8", "--targets", "all")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"llama model", "dim 64, 5 layers, 8 heads (4 kv, head dim 8), ffn 172, vocab 512",
		"tokenizer llama, 512 tokens", "blk.4.ffn_down.weight", "5 tensors kept their type", "AdamW moments", "total"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "kept: "); n != 5 {
		t.Errorf("%d tensors marked kept, want the 5 ffn_down", n)
	}
	js, _, code := runLora(t, "inspect", m, "--json", "--rank", "4", "--cutoff", "32", "--batch", "2")
	var rep inspectReport
	if code != 0 || json.Unmarshal([]byte(js), &rep) != nil {
		t.Fatalf("json: exit %d %s", code, js)
	}
	want, err := model.EstimateMemory(rep.Config, rep.WeightBytes, model.TrainPlan{Rank: 4, Targets: []model.Module{model.Q, model.V}, Batch: 2, Seq: 32, Dropout: true})
	if err != nil || rep.Memory != want || rep.Config.Layers != 5 {
		t.Errorf("memory %+v, want %+v (%v)", rep.Memory, want, err)
	}
	g, p := storiesAdapter(t, m, false)
	for _, a := range []string{g, p} {
		out, errs, code := runLora(t, "inspect", a)
		if code != 0 || !strings.Contains(out, "rank 4, alpha 8") || !strings.Contains(out, "on 5 layers: 15 weight pairs") {
			t.Errorf("inspect %s: exit %d %s\n%s", a, code, errs, out)
		}
	}
}
