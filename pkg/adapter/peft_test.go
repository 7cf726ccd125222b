package adapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/safetensors"
)

func TestPEFTRoundTrip(t *testing.T) {
	c := testCfg
	ad := randomAdapter(c, 3, 6, true, 5)
	ad.Dropout = 0.05
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := SavePEFT(dir, ad, c); err != nil {
		t.Fatal(err)
	}
	// The config as PEFT writes it.
	var cfg map[string]any
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"peft_type": "LORA", "r": 3.0, "lora_alpha": 6.0, "use_rslora": true, "fan_in_fan_out": false,
		"task_type": "CAUSAL_LM", "base_model_name_or_path": "test/base", "lora_dropout": 0.05} {
		if !reflect.DeepEqual(cfg[k], want) {
			t.Errorf("%s = %v, want %v", k, cfg[k], want)
		}
	}
	// The weights as PEFT names and shapes them.
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Tensor("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")
	if !ok || !reflect.DeepEqual(ti.Shape, []int{8, 3}) {
		t.Fatalf("k_proj lora_B: %v", ti)
	}
	ti, ok = f.Tensor("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")
	if !ok || !reflect.DeepEqual(ti.Shape, []int{3, 24}) {
		t.Fatalf("down_proj lora_A: %v", ti)
	}
	if len(f.Tensors) != 2*len(ad.Weights) || f.Metadata["format"] != "pt" {
		t.Fatalf("%d tensors, metadata %v", len(f.Tensors), f.Metadata)
	}
	f.Close()
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Rank != 3 || back.Alpha != 6 || !back.RSLoRA || back.Layout != LayoutHF || back.Dropout != 0.05 {
		t.Fatalf("loaded %+v", back)
	}
	if !reflect.DeepEqual(back.Weights, ad.Weights) {
		t.Fatal("weights differ after the PEFT round trip")
	}
	// An adapter held in the GGUF order is written un-permuted.
	gg := ad.Convert(LayoutGGUF, c)
	dir2 := filepath.Join(t.TempDir(), "from-gguf-order")
	if err := SavePEFT(dir2, gg, c); err != nil {
		t.Fatal(err)
	}
	back2, err := LoadPEFT(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back2.Weights, ad.Weights) {
		t.Fatal("a GGUF-order adapter was not un-permuted when saved as PEFT")
	}
}

func TestPEFTConfigRefusals(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"peft_type":"LORA","r":8,"lora_alpha":16,"fan_in_fan_out":true}`, "fan_in_fan_out"},
		{`{"peft_type":"IA3","r":8}`, "only LORA"},
		{`{"peft_type":"LORA","r":0}`, "positive rank"},
		{`{"peft_type":"LORA","r":4,"use_dora":true}`, "DoRA"},
		{`{"peft_type":"LORA","r":4,"alpha_pattern":{"q_proj":8}}`, "alpha_pattern"},
		{`{"peft_type":"LORA","r":4,"bias":"all"}`, "bias"},
		{`{"peft_type":"LORA","r":4,"target_modules":{"x":1}}`, "target_modules"},
		{`{"peft_type":`, "unexpected end"},
	} {
		_, err := parsePEFTConfig([]byte(tc.json), "adapter_config.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "adapter_config.json") {
			t.Errorf("%s: error %v, want one naming the file and mentioning %q", tc.json, err, tc.want)
		}
	}
	a, err := parsePEFTConfig([]byte(`{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":"q_proj|v_proj"}`), "x")
	if err != nil || a.Targets[0] != "q_proj|v_proj" {
		t.Fatalf("string target_modules: %v %v", a, err)
	}
}

func TestPEFTKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		k    Key
		isA  bool
		fail bool
	}{
		{"base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", Key{3, model.Q}, true, false},
		{"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", Key{0, model.Down}, false, false},
		{"base_model.model.model.layers.12.self_attn.o_proj.lora_B.default.weight", Key{12, model.O}, false, false},
		{"base_model.model.lm_head.lora_A.weight", Key{}, false, true},
		{"base_model.model.model.layers.1.self_attn.c_attn.lora_A.weight", Key{}, false, true},
		{"base_model.model.model.layers.x.self_attn.q_proj.lora_A.weight", Key{}, false, true},
	} {
		k, isA, err := parsePEFTKey(tc.key)
		if (err != nil) != tc.fail || (!tc.fail && (k != tc.k || isA != tc.isA)) {
			t.Errorf("%s: %v %v %v", tc.key, k, isA, err)
		}
		if !tc.fail && !strings.Contains(tc.key, "default") && peftKey(k, isA) != tc.key {
			t.Errorf("peftKey(%v, %v) = %s, want %s", k, isA, peftKey(k, isA), tc.key)
		}
	}
}

// TestRealGPT2Adapter: a real trained PEFT adapter (GPT-2, Conv1D layout) is
// readable as a file but refused for LLaMA with the reason.
func TestRealGPT2Adapter(t *testing.T) {
	dir := sharedDir(t, "adapters/gpt2-tigrinya-lora")
	ts, err := readTensors(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 72 {
		t.Fatalf("%d tensors, want 72", len(ts))
	}
	for _, x := range ts {
		if strings.HasSuffix(x.name, "lora_A.weight") && x.shape[0] != 8 || strings.HasSuffix(x.name, "lora_B.weight") && x.shape[1] != 8 {
			t.Fatalf("%s has shape %v: want A [8, in], B [out, 8]", x.name, x.shape)
		}
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "fan_in_fan_out") {
		t.Fatalf("error %v, want the fan_in_fan_out refusal", err)
	}
}

func sharedDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root not found")
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(dir, "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test asset %s absent (%v): fetch ../shared/data to run this test", p, err)
	}
	return p
}
