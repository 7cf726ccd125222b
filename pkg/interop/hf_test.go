package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/safetensors"
	"github.com/lora-dev/lora/pkg/train"
)

// hfUnpermute undoes convert_hf_to_gguf.py's permute on a [rows, cols]
// row-major matrix: GGUF row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i.
// (Written here, apart from model.UnpermuteQK, so the fixture does not
// borrow the code under test.)
func hfUnpermute(w []float32, rows, cols, heads int) []float32 {
	out := make([]float32, len(w))
	hd := rows / heads
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			for j := 0; j < 2; j++ {
				copy(out[(h*hd+j*hd/2+i)*cols:][:cols], w[(h*hd+2*i+j)*cols:][:cols])
			}
		}
	}
	return out
}

// writeHFDir writes the GGUF llama base src as a Hugging Face directory of
// the given class, LlamaForCausalLM or MistralForCausalLM (config.json +
// model.safetensors, q/k un-permuted), as convert_llama_weights_to_hf.py
// would have produced it.
func writeHFDir(t *testing.T, src, dir, class string) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := func(key string) int {
		v, ok := f.Uint(key)
		if !ok {
			t.Fatalf("%s: no %s", src, key)
		}
		return int(v)
	}
	eps, _ := f.Float("llama.attention.layer_norm_rms_epsilon")
	heads, kvHeads := u("llama.attention.head_count"), u("llama.attention.head_count_kv")
	tok, _ := f.Tensor("token_embd.weight")
	cfg := map[string]any{
		"architectures": []string{class}, "model_type": map[string]string{"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral"}[class],
		"hidden_size": u("llama.embedding_length"), "intermediate_size": u("llama.feed_forward_length"),
		"num_hidden_layers": u("llama.block_count"), "num_attention_heads": heads, "num_key_value_heads": kvHeads,
		"rms_norm_eps": eps, "rope_theta": 10000.0, "vocab_size": int(tok.Dims[1]),
		"max_position_embeddings": 512, "tie_word_embeddings": false, "torch_dtype": "float32",
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
	parts := map[string]string{"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
		"attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
		"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
	var ts []safetensors.Tensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		v, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		shape := make([]int, len(ti.Dims))
		for j, d := range ti.Dims {
			shape[len(shape)-1-j] = int(d)
		}
		name, ok := names[ti.Name]
		if !ok {
			var layer int
			var stem string
			if _, err := fmt.Sscanf(strings.ReplaceAll(ti.Name, ".", " "), "blk %d %s weight", &layer, &stem); err != nil || parts[stem] == "" {
				t.Fatalf("unexpected tensor %s", ti.Name)
			}
			name = fmt.Sprintf("model.layers.%d.%s.weight", layer, parts[stem])
			switch stem {
			case "attn_q":
				v = hfUnpermute(v, shape[0], shape[1], heads)
			case "attn_k":
				v = hfUnpermute(v, shape[0], shape[1], kvHeads)
			}
		}
		ts = append(ts, safetensors.NewF32(name, shape, v))
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// TestHFBase runs the same checks on the Hugging Face form of stories260K,
// where lora keeps the HF layout (NeoX RoPE, q/k not permuted): an adapter
// trained on the GGUF form applies to it unchanged in effect, and one trained
// on the HF form is saved in the right order for llama.cpp. The reference
// always reads the GGUF file.
func TestHFBase(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	ggufAdapter, cfg := trained(t, base)
	dir := t.TempDir()
	hfDir := filepath.Join(dir, "hf")
	writeHFDir(t, sharedData(t, base), hfDir, "LlamaForCausalLM")
	exs := heldout()
	examples := writeExamples(t, exs)

	m, err := model.Load(hfDir, ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.QKPermuted {
		t.Fatal("a Hugging Face directory loaded with permuted q/k")
	}

	// An adapter trained on the HF form, in the HF layout.
	data := trainingData()
	tr, err := train.New(m, train.Options{Rank: 4, Alpha: 8,
		Targets: []model.Module{model.Q, model.K, model.V, model.O, model.Gate, model.Up, model.Down},
		LR:      2e-2, Schedule: train.Schedule{Name: "constant"}, MaxGradNorm: 1,
		BatchSize: 4, MicroBatch: 4, CutoffLen: 16, MaxSteps: 4, Seed: 11, Shuffle: true}, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	for tr.Step < tr.Plan.TotalSteps {
		if _, err := tr.TrainStep(data); err != nil {
			t.Fatal(err)
		}
	}
	hfAdapter, err := tr.Adapter()
	tr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if hfAdapter.Layout != adapter.LayoutHF {
		t.Fatalf("trained on an HF directory, the adapter is in layout %v", hfAdapter.Layout)
	}

	var jobs []job
	paths := map[string]string{}
	for _, x := range []struct {
		name string
		a    *adapter.Adapter
		c    model.Config
	}{{"gguf-trained", ggufAdapter, cfg}, {"hf-trained", hfAdapter, m.Config}} {
		peftDir := filepath.Join(dir, x.name+"-peft")
		ggufPath := filepath.Join(dir, x.name+".gguf")
		if err := adapter.SavePEFT(peftDir, x.a, x.c); err != nil {
			t.Fatal(err)
		}
		if err := adapter.SaveGGUF(ggufPath, x.a, x.c); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{Name: x.name + "/PEFT", PEFT: peftDir}, job{Name: x.name + "/GGUF", GGUFLoRA: ggufPath})
		paths[x.name+"/PEFT"], paths[x.name+"/GGUF"] = peftDir, ggufPath
	}
	jobs = append(jobs, job{Name: "base"})
	refs := referenceJobs(t, base, examples, jobs)

	for _, j := range jobs {
		t.Run(j.Name, func(t *testing.T) {
			r := refs[j.Name]
			if r.Error != "" {
				t.Fatalf("reference: %s", r.Error)
			}
			ours, _ := ourLoss(t, hfDir, paths[j.Name], exs)
			t.Logf("HF base, %s: ours %.9f, reference (GGUF base) %.9f (relative %.2g)", j.Name, ours, r.Loss, rel(ours, r.Loss))
			if d := rel(ours, r.Loss); d > relTol {
				t.Errorf("our loss on the HF directory %.9f, reference %.9f (relative %.2g > %g)", ours, r.Loss, d, relTol)
			}
			if j.Name != "base" && rel(r.Loss, refs["base"].Loss) < 20*relTol {
				t.Errorf("the adapter barely moves the loss (%.9f vs base %.9f): the check proves nothing", r.Loss, refs["base"].Loss)
			}
		})
	}
}

// TestGGUFAdapterOfMistralBase: llama.cpp has no "mistral" architecture.
// convert_hf_to_gguf.py registers MistralForCausalLM under LlamaModel
// (MODEL_ARCH.LLAMA, q/k permuted), so a Mistral base's GGUF says
// general.architecture=llama, and llama_adapter_lora_init refuses an adapter
// whose architecture differs ("model arch and LoRA arch mismatch"). An
// adapter trained on a Mistral HF directory must therefore be written with
// general.architecture=llama, with its q/k rows permuted.
func TestGGUFAdapterOfMistralBase(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	ggufAdapter, cfg := trained(t, base)
	dir := t.TempDir()
	hfDir := filepath.Join(dir, "mistral")
	writeHFDir(t, sharedData(t, base), hfDir, "MistralForCausalLM")
	m, err := model.Load(hfDir, ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.Arch != model.ArchMistral {
		t.Fatalf("the Mistral directory loaded as %q", m.Config.Arch)
	}
	// The adapter in the Mistral model's (HF) layout, as training on it gives.
	a := ggufAdapter.Convert(adapter.LayoutHF, cfg)
	a.Arch = m.Config.Arch
	path := filepath.Join(dir, "adapter.gguf")
	if err := adapter.SaveGGUF(path, a, m.Config); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := f.String("general.architecture")
	f.Close()
	if arch != "llama" {
		t.Errorf("BUG pkg/adapter/gguf.go SaveGGUF: a Mistral base's adapter has general.architecture=%q; llama.cpp "+
			"(src/llama-arch.cpp) has no %q architecture and converts MistralForCausalLM as \"llama\", so llama_adapter_lora_init "+
			"refuses it with \"model arch and LoRA arch mismatch\": write \"llama\" for mistral", arch, arch)
	}
	// Whatever the name, the rows must be in llama.cpp's order: the
	// reference (with the check on the name relaxed by copying the file
	// under the base's architecture) must see the GGUF-trained adapter.
	exs := heldout()
	examples := writeExamples(t, exs)
	fixed := filepath.Join(dir, "adapter-llama.gguf")
	relabel(t, path, fixed, "llama")
	refs := referenceJobs(t, base, examples, []job{{Name: "mistral", GGUFLoRA: fixed}})
	ours, _ := ourLoss(t, hfDir, path, exs)
	if r := refs["mistral"]; r.Error != "" || rel(ours, r.Loss) > relTol {
		t.Errorf("Mistral adapter: ours %.9f, reference %.9f (%s)", ours, r.Loss, r.Error)
	}
}

// relabel copies the GGUF file src to dst with general.architecture = arch.
func relabel(t *testing.T, src, dst, arch string) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := append([]gguf.KV(nil), f.KV...)
	for i := range kv {
		if kv[i].Key == "general.architecture" {
			kv[i].Value = gguf.MustValue(arch)
		}
	}
	var ts []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorData(ti)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, gguf.WriteTensor{Name: ti.Name, Dims: ti.Dims, Type: ti.Type, Data: data})
	}
	if err := gguf.Write(dst, kv, ts); err != nil {
		t.Fatal(err)
	}
}
