package interop

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
)

// TestReferenceRefuses checks that the reference enforces llama.cpp's adapter
// contract and reads hostile files without crashing: a file that llama.cpp
// would refuse must not get a loss, so that the agreement in
// TestLossAgreesWithReference also proves the contract.
func TestReferenceRefuses(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	examples := writeExamples(t, heldout())
	dir := t.TempDir()

	// lora_a [r, in] and lora_b [out, r] (row-major) for blk.0.attn_q: in = out = 64.
	const r, dim = 4, 64
	a := make([]float32, r*dim)
	b := make([]float32, dim*r)
	tensor := func(name string, shape []int, data []float32) gguf.WriteTensor {
		wt, err := gguf.NewTensor(name, shape, data, gguf.F32)
		if err != nil {
			t.Fatal(err)
		}
		return wt
	}
	goodTensors := []gguf.WriteTensor{tensor("blk.0.attn_q.weight.lora_a", []int{r, dim}, a), tensor("blk.0.attn_q.weight.lora_b", []int{dim, r}, b)}
	kv := func(typ, adapterType, arch string, alpha any) []gguf.KV {
		return []gguf.KV{
			{Key: "general.architecture", Value: gguf.MustValue(arch)},
			{Key: "general.type", Value: gguf.MustValue(typ)},
			{Key: "adapter.type", Value: gguf.MustValue(adapterType)},
			{Key: "adapter.lora.alpha", Value: gguf.MustValue(alpha)},
		}
	}
	writeGGUF := func(name string, kv []gguf.KV, ts []gguf.WriteTensor) string {
		p := filepath.Join(dir, name)
		if err := gguf.Write(p, kv, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := writeGGUF("good.gguf", kv("adapter", "lora", "llama", float32(8)), goodTensors)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	writeRaw := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	peftDir := func(name, config string, st []byte) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "adapter_config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "adapter_model.safetensors"), st, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	safetensors := func(header string, data int) []byte {
		out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
		return append(append(out, header...), make([]byte, data)...)
	}
	const cfg = `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}`
	qA := `"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"`
	qB := `"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"`

	cases := []struct {
		name, flag, path, want string
	}{
		{"general.type model", "--gguf-lora", writeGGUF("model.gguf", kv("model", "lora", "llama", float32(8)), goodTensors), "general.type"},
		{"adapter.type", "--gguf-lora", writeGGUF("cvec.gguf", kv("adapter", "control_vector", "llama", float32(8)), goodTensors), "adapter.type"},
		{"architecture mismatch", "--gguf-lora", writeGGUF("qwen.gguf", kv("adapter", "lora", "qwen2", float32(8)), goodTensors), "arch mismatch"},
		{"alpha stored as float64", "--gguf-lora", writeGGUF("f64.gguf", kv("adapter", "lora", "llama", float64(8)), goodTensors), "adapter.lora.alpha has type float64"},
		{"lora_a not transposed", "--gguf-lora", writeGGUF("untransposed.gguf", kv("adapter", "lora", "llama", float32(8)),
			[]gguf.WriteTensor{tensor("blk.0.attn_q.weight.lora_a", []int{dim, r}, a), tensor("blk.0.attn_q.weight.lora_b", []int{dim, r}, b)}), "incorrect shape"},
		{"lone lora_a", "--gguf-lora", writeGGUF("lone.gguf", kv("adapter", "lora", "llama", float32(8)), goodTensors[:1]), "missing one component"},
		{"unknown base tensor", "--gguf-lora", writeGGUF("blk9.gguf", kv("adapter", "lora", "llama", float32(8)),
			[]gguf.WriteTensor{tensor("blk.9.attn_q.weight.lora_a", []int{r, dim}, a), tensor("blk.9.attn_q.weight.lora_b", []int{dim, r}, b)}), "does not exist in base model"},
		{"truncated GGUF", "--gguf-lora", writeRaw("truncated.gguf", raw[:len(raw)/2]), "past the end"},
		{"truncated GGUF header", "--gguf-lora", writeRaw("header.gguf", raw[:40]), "unexpected end of file"},
		{"not GGUF", "--gguf-lora", writeRaw("ggml.bin", append([]byte("ggla"), raw[4:]...)), "not a GGUF file"},
		{"huge string length", "--gguf-lora", writeRaw("huge.gguf", append(append([]byte("GGUF\x03\x00\x00\x00"), make([]byte, 8)...),
			[]byte("\x01\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f")...)), "too long"},
		{"safetensors header past EOF", "--peft", peftDir("st-long", cfg, binary.LittleEndian.AppendUint64(nil, 1<<40)), "does not fit"},
		{"safetensors offsets", "--peft", peftDir("st-offsets", cfg, safetensors(`{`+qA+`: {"dtype": "F32", "shape": [4, 64], "data_offsets": [0, 100]}}`, 100)), "data_offsets"},
		{"safetensors bad JSON types", "--peft", peftDir("st-types", cfg, safetensors(`{`+qA+`: 7}`, 0)), "peft_reference:"},
		{"PEFT lone lora_B", "--peft", peftDir("st-lone", cfg, safetensors(`{`+qB+`: {"dtype": "F32", "shape": [64, 4], "data_offsets": [0, 1024]}}`, 1024)), "lacks lora_A or lora_B"},
		{"PEFT wrong rank", "--peft", peftDir("st-rank", `{"peft_type": "LORA", "r": 8, "lora_alpha": 8}`,
			safetensors(`{`+qA+`: {"dtype": "F32", "shape": [4, 64], "data_offsets": [0, 1024]}, `+qB+`: {"dtype": "F32", "shape": [64, 4], "data_offsets": [1024, 2048]}}`, 2048)), "want (8, 64)"},
		{"PEFT embedding adapter", "--peft", peftDir("st-embed", cfg, safetensors(`{"base_model.model.model.embed_tokens.lora_embedding_A": {"dtype": "F32", "shape": [4, 512], "data_offsets": [0, 8192]}}`, 8192)), "unexpected tensor"},
		{"DoRA", "--peft", peftDir("dora", `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_dora": true}`, nil), "DoRA"},
	}
	jobs := []job{{Name: "base"}, {Name: "good", GGUFLoRA: good}}
	for _, tc := range cases {
		j := job{Name: tc.name}
		if tc.flag == "--peft" {
			j.PEFT = tc.path
		} else {
			j.GGUFLoRA = tc.path
		}
		jobs = append(jobs, j)
	}
	ref := referenceJobs(t, base, examples, jobs)
	for _, tc := range cases {
		r := ref[tc.name]
		switch {
		case r.Error == "":
			t.Errorf("%s: the reference accepted it (loss %g)", tc.name, r.Loss)
		case !strings.HasPrefix(r.Error, "peft_reference: "):
			t.Errorf("%s: unexpected error form %q", tc.name, r.Error)
		case !strings.Contains(r.Error, tc.want):
			t.Errorf("%s: message %q does not say %q", tc.name, r.Error, tc.want)
		}
	}

	// The well-formed file is accepted: the refusals above are not a
	// reference that refuses everything. (B is zero: the base's loss.)
	if ok, plain := ref["good"], ref["base"]; ok.Error != "" || ok.Adapted != 1 || rel(ok.Loss, plain.Loss) > 1e-12 {
		t.Errorf("zero-B adapter: %q, %d adapted, loss %.12f; base %.12f", ok.Error, ok.Adapted, ok.Loss, plain.Loss)
	}

	// A malformed base or examples file fails the whole run with a message.
	script := needReference(t)
	for _, tc := range []struct{ name, model, examples, want string }{
		{"base is an adapter", good, examples, "not a base model"},
		{"examples misaligned", sharedData(t, base), writeRaw("bad.jsonl", []byte(`{"input_ids": [1, 2, 3], "labels": [1, 2]}`+"\n")), "3 input_ids but 2 labels"},
		{"token outside the vocabulary", sharedData(t, base), writeRaw("oov.jsonl", []byte(`{"input_ids": [1, 600], "labels": [1, 600]}`+"\n")), "outside the vocabulary"},
	} {
		out, err := execOutput(python, script, "--model", tc.model, "--examples", tc.examples)
		if err == nil || strings.Contains(out, "Traceback") || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v, %q; want a refusal that says %q", tc.name, err, out, tc.want)
		}
	}
}

// TestReferenceReproducesStories260K checks the reference itself against a
// published truth: greedy decoding of stories260K from BOS, through its HF
// path (un-permuted q/k, rotate-half RoPE) and its llama.cpp path (GGUF
// layout, adjacent-pair RoPE), gives the start of Karpathy's documented
// llama2.c output.
func TestReferenceReproducesStories260K(t *testing.T) {
	needReference(t)
	expected, err := os.ReadFile(sharedData(t, "models/stories260K.greedy-t0.expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	}
	reference(t, &got, "--model", sharedData(t, "models/stories260K.gguf"), "--greedy", "48")
	for _, path := range []string{"hf", "gguf"} {
		g := got[path]
		if len(g.IDs) != 48 || len(g.Text) < 100 || !strings.HasPrefix(string(expected), g.Text) {
			t.Errorf("%s path: %d tokens, text %q is not the start of the expected %q", path, len(g.IDs), g.Text, string(expected[:min(len(expected), 200)]))
		}
	}
}
