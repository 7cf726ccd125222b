package tokenizer

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/gguf"
)

// GGUF metadata keys of the tokenizer.
const (
	keyModel       = "tokenizer.ggml.model"
	keyPre         = "tokenizer.ggml.pre"
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTypes       = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyBOS         = "tokenizer.ggml.bos_token_id"
	keyEOS         = "tokenizer.ggml.eos_token_id"
	keyUNK         = "tokenizer.ggml.unknown_token_id"
	keyPAD         = "tokenizer.ggml.padding_token_id"
	keyAddBOS      = "tokenizer.ggml.add_bos_token"
	keyAddEOS      = "tokenizer.ggml.add_eos_token"
	keySpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyEOT         = "tokenizer.ggml.eot_token_id"
	keyEOM         = "tokenizer.ggml.eom_token_id"
)

// FromGGUF builds the tokenizer described by a GGUF file's metadata, with
// llama.cpp's defaults for absent keys.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	t, err := New(v)
	if err != nil {
		return nil, fmt.Errorf("gguf tokenizer: %w", err)
	}
	return t, nil
}

// VocabFromGGUF reads the tokenizer metadata into a Vocab.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	var v Vocab
	wrongType := func(key, want string) error {
		return fmt.Errorf("gguf tokenizer: %s is not %s; the file is damaged or was written by an incompatible converter", key, want)
	}
	present := func(key string) bool { _, ok := f.Lookup(key); return ok }

	model, ok := f.String(keyModel)
	if !ok {
		if present(keyModel) {
			return v, wrongType(keyModel, "a string")
		}
		return v, fmt.Errorf("gguf tokenizer: %s is missing: the file carries no tokenizer (use the model's tokenizer.json instead)", keyModel)
	}
	v.Model = model
	v.PAD = NoToken
	switch model {
	case ModelLlama:
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS, v.AddSpacePrefix = true, true
	case ModelGPT2:
		v.BOS, v.EOS, v.UNK = 11, 11, NoToken
		if pre, ok := f.String(keyPre); ok {
			v.Pre = pre
		} else if present(keyPre) {
			return v, wrongType(keyPre, "a string")
		}
		cfg, err := lookupPre(v.Pre)
		if err != nil {
			return v, fmt.Errorf("gguf tokenizer: %w", err)
		}
		v.AddBOS = cfg.addBOS
		if cfg.noBOS {
			v.BOS = NoToken
		}
		merges, ok := f.Strings(keyMerges)
		if !ok {
			if present(keyMerges) {
				return v, wrongType(keyMerges, "a string array")
			}
			if v.Pre != "kimi-k2" { // llama.cpp lets Kimi-K2 go without merges
				return v, fmt.Errorf("gguf tokenizer: %s is missing, a gpt2 tokenizer needs its merges", keyMerges)
			}
		}
		v.Merges = merges
	case "no_vocab", "none":
		return v, fmt.Errorf("gguf tokenizer: %s is %q: the file carries no vocabulary", keyModel, model)
	default:
		return v, fmt.Errorf("gguf tokenizer: %s %q is not supported (want %q or %q)", keyModel, model, ModelLlama, ModelGPT2)
	}

	tokens, ok := f.Strings(keyTokens)
	if !ok {
		if present(keyTokens) {
			return v, wrongType(keyTokens, "a string array")
		}
		return v, fmt.Errorf("gguf tokenizer: %s is missing", keyTokens)
	}
	v.Tokens = tokens
	if present(keyScores) {
		scores, ok := f.Float32s(keyScores)
		if !ok {
			ints, iok := f.Int32s(keyScores)
			if !iok {
				return v, wrongType(keyScores, "a float32 or int32 array")
			}
			scores = make([]float32, len(ints))
			for i, x := range ints {
				scores[i] = float32(x)
			}
		}
		if len(scores) < len(tokens) {
			return v, fmt.Errorf("gguf tokenizer: %s has %d entries for %d tokens", keyScores, len(scores), len(tokens))
		}
		v.Scores = scores
	}
	if present(keyTypes) {
		types, ok := f.Int32s(keyTypes)
		if !ok {
			return v, wrongType(keyTypes, "an int32 array")
		}
		if len(types) < len(tokens) {
			return v, fmt.Errorf("gguf tokenizer: %s has %d entries for %d tokens", keyTypes, len(types), len(tokens))
		}
		v.Types = types
	}

	n := uint64(len(tokens))
	for _, s := range []struct {
		key string
		id  *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyUNK, &v.UNK}, {keyPAD, &v.PAD}} {
		if *s.id >= 0 && uint64(*s.id) >= n {
			*s.id = NoToken // default out of range: disabled, as llama.cpp does
		}
		if id, ok := f.Uint(s.key); ok && id < n {
			*s.id = int32(id)
		}
	}
	v.Name, _ = f.String("general.name")
	for _, key := range []string{keyEOT, keyEOM} {
		if id, ok := f.Uint(key); ok && id < n {
			v.EOG = append(v.EOG, int32(id))
		}
	}
	if b, ok := f.Bool(keyAddBOS); ok {
		v.AddBOS = b
	}
	if b, ok := f.Bool(keyAddEOS); ok {
		v.AddEOS = b
	}
	if b, ok := f.Bool(keySpacePrefix); ok {
		v.AddSpacePrefix = b
	}
	if v.AddBOS && v.BOS == NoToken {
		return v, fmt.Errorf("gguf tokenizer: %s is true, but %s is not set", keyAddBOS, keyBOS)
	}
	if v.AddEOS && v.EOS == NoToken {
		return v, fmt.Errorf("gguf tokenizer: %s is true, but %s is not set", keyAddEOS, keyEOS)
	}
	return v, nil
}
