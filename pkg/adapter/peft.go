package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/model"
)

// PEFT file names inside an adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// peftConfig is the part of adapter_config.json this package reads.
type peftConfig struct {
	PeftType      string          `json:"peft_type"`
	R             int             `json:"r"`
	LoraAlpha     float64         `json:"lora_alpha"`
	LoraDropout   float64         `json:"lora_dropout"`
	TargetModules json.RawMessage `json:"target_modules"`
	UseRSLoRA     bool            `json:"use_rslora"`
	FanInFanOut   bool            `json:"fan_in_fan_out"`
	BaseModel     string          `json:"base_model_name_or_path"`
	AlphaPattern  map[string]any  `json:"alpha_pattern"`
	UseDoRA       bool            `json:"use_dora"`
	Bias          string          `json:"bias"`
	ModulesToSave []string        `json:"modules_to_save"`
}

// parsePEFTConfig reads adapter_config.json and refuses what a LLaMA-family
// LoRA cannot be, with the reason and the fix.
func parsePEFTConfig(data []byte, name string) (*Adapter, error) {
	var pc peftConfig
	if err := json.Unmarshal(data, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case pc.PeftType != "" && !strings.EqualFold(pc.PeftType, "LORA"):
		return nil, fmt.Errorf("%s: peft_type is %q: only LORA adapters are supported", name, pc.PeftType)
	case pc.R <= 0:
		return nil, fmt.Errorf("%s: r is %d: it must be a positive rank", name, pc.R)
	case pc.FanInFanOut:
		return nil, fmt.Errorf("%s: fan_in_fan_out is true, the layout of GPT-2 style Conv1D layers; LLaMA-family linears are not transposed, so this adapter belongs to another architecture", name)
	case pc.UseDoRA:
		return nil, fmt.Errorf("%s: use_dora is true: DoRA adapters are not supported (train a plain LoRA)", name)
	case len(pc.AlphaPattern) > 0:
		return nil, fmt.Errorf("%s: alpha_pattern is set: per-module alphas are not supported", name)
	case pc.Bias != "" && pc.Bias != "none":
		return nil, fmt.Errorf("%s: bias is %q: adapters that train biases are not supported (use bias \"none\")", name, pc.Bias)
	case len(pc.ModulesToSave) > 0:
		return nil, fmt.Errorf("%s: modules_to_save %v: fully trained extra modules are not supported", name, pc.ModulesToSave)
	}
	a := &Adapter{Rank: pc.R, Alpha: pc.LoraAlpha, RSLoRA: pc.UseRSLoRA, Dropout: pc.LoraDropout, BaseModel: pc.BaseModel,
		Layout: LayoutHF, Weights: map[Key]*Weight{}}
	if len(pc.TargetModules) > 0 && string(pc.TargetModules) != "null" {
		var list []string
		if err := json.Unmarshal(pc.TargetModules, &list); err != nil {
			var one string
			if err2 := json.Unmarshal(pc.TargetModules, &one); err2 != nil {
				return nil, fmt.Errorf("%s: target_modules is neither a list nor a string", name)
			}
			list = []string{one}
		}
		a.Targets = list
	}
	return a, nil
}

// parsePEFTKey splits "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight".
func parsePEFTKey(key string) (k Key, isA bool, err error) {
	rest := strings.TrimPrefix(key, "base_model.model.")
	rest, ok := strings.CutPrefix(rest, "model.layers.")
	if !ok {
		return k, false, fmt.Errorf("tensor %q is not in a decoder layer (embedding, lm_head and norm adapters are not supported)", key)
	}
	num, rest, ok := strings.Cut(rest, ".")
	n, perr := strconv.Atoi(num)
	if !ok || perr != nil || n < 0 || n > 1<<16 {
		return k, false, fmt.Errorf("tensor %q: bad layer number", key)
	}
	var suffix string
	for _, s := range []string{".lora_A.weight", ".lora_A.default.weight", ".lora_B.weight", ".lora_B.default.weight"} {
		if strings.HasSuffix(rest, s) {
			suffix = s
			break
		}
	}
	if suffix == "" {
		return k, false, fmt.Errorf("tensor %q is not a lora_A/lora_B weight", key)
	}
	path := strings.TrimSuffix(rest, suffix)
	for m := model.Module(0); m < model.NumModules; m++ {
		if path == m.HFPath() {
			return Key{Layer: n, Module: m}, strings.Contains(suffix, "lora_A"), nil
		}
	}
	return k, false, fmt.Errorf("tensor %q targets %q, not one of the LLaMA linears (self_attn.q/k/v/o_proj, mlp.gate/up/down_proj)", key, path)
}

// peftKey is the PEFT tensor name of a weight.
func peftKey(k Key, isA bool) string {
	ab := "lora_B"
	if isA {
		ab = "lora_A"
	}
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s.weight", k.Layer, k.Module.HFPath(), ab)
}

// LoadPEFT reads a PEFT LoRA directory: adapter_config.json and
// adapter_model.safetensors ([r, in] lora_A and [out, r] lora_B per linear,
// Hugging Face row order).
func LoadPEFT(dir string) (*Adapter, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w (a PEFT adapter directory holds %s and %s)", err, ConfigFile, WeightsFile)
	}
	a, err := parsePEFTConfig(data, cfgPath)
	if err != nil {
		return nil, err
	}
	wPath := filepath.Join(dir, WeightsFile)
	tensors, err := readTensors(wPath)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", wPath, err)
	}
	type pair struct{ a, b *tensor }
	pairs := map[Key]*pair{}
	for i := range tensors {
		t := &tensors[i]
		k, isA, err := parsePEFTKey(t.name)
		if err != nil {
			return nil, fmt.Errorf("adapter %s: %w", wPath, err)
		}
		if len(t.shape) != 2 {
			return nil, fmt.Errorf("adapter %s: tensor %q has shape %v, want a matrix", wPath, t.name, t.shape)
		}
		p := pairs[k]
		if p == nil {
			p = &pair{}
			pairs[k] = p
		}
		if isA {
			p.a = t
		} else {
			p.b = t
		}
	}
	for k, p := range pairs {
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf("adapter %s: %v has only one of lora_A and lora_B", wPath, k)
		}
		if p.a.shape[0] != p.b.shape[1] {
			return nil, fmt.Errorf("adapter %s: %v: lora_A %v and lora_B %v do not share a rank (want [r, in] and [out, r])", wPath, k, p.a.shape, p.b.shape)
		}
		a.Weights[k] = &Weight{A: p.a.data, B: p.b.data, Rank: p.a.shape[0], In: p.a.shape[1], Out: p.b.shape[0]}
	}
	if len(a.Weights) == 0 {
		return nil, fmt.Errorf("adapter %s: %w: no lora_A/lora_B tensors", wPath, ErrFormat)
	}
	return a, nil
}

// SavePEFT writes a as a PEFT LoRA directory (adapter_config.json and
// adapter_model.safetensors in the Hugging Face layout, q/k rows un-permuted
// for a base of config c), each file atomically. dir is created if needed.
func SavePEFT(dir string, a *Adapter, c model.Config) error {
	if err := a.check(c); err != nil {
		return fmt.Errorf("saving %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hf := a.Convert(LayoutHF, c)
	targets := append([]string(nil), a.Targets...)
	if len(targets) == 0 {
		seen := map[string]bool{}
		for k := range a.Weights {
			if !seen[k.Module.String()] {
				seen[k.Module.String()] = true
				targets = append(targets, k.Module.String())
			}
		}
	}
	sort.Strings(targets)
	rankPattern := map[string]int{}
	for _, k := range hf.Keys() {
		if w := hf.Weights[k]; w.Rank != a.Rank {
			rankPattern[fmt.Sprintf("model.layers.%d.%s", k.Layer, k.Module.HFPath())] = w.Rank
		}
	}
	cfg := map[string]any{
		"alpha_pattern":           map[string]any{},
		"base_model_name_or_path": a.BaseModel,
		"bias":                    "none",
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"lora_alpha":              a.Alpha,
		"lora_dropout":            a.Dropout,
		"modules_to_save":         nil,
		"peft_type":               "LORA",
		"r":                       a.Rank,
		"rank_pattern":            rankPattern,
		"target_modules":          targets,
		"task_type":               "CAUSAL_LM",
		"use_dora":                false,
		"use_rslora":              a.RSLoRA,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	var ts []tensor
	for _, k := range hf.Keys() {
		w := hf.Weights[k]
		ts = append(ts, tensor{name: peftKey(k, true), shape: []int{w.Rank, w.In}, data: w.A},
			tensor{name: peftKey(k, false), shape: []int{w.Out, w.Rank}, data: w.B})
	}
	if err := writeTensors(filepath.Join(dir, WeightsFile), ts); err != nil {
		return fmt.Errorf("saving %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFile), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("saving %s: %w", dir, err)
	}
	return nil
}

// tensor is a float32 matrix read from or written to safetensors.
type tensor struct {
	name  string
	shape []int
	data  []float32
}
