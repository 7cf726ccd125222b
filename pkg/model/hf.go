package model

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// loadHF loads a Hugging Face model directory.
func loadHF(path string, be backend.Backend, opts LoadOptions) (*Model, error) {
	return nil, fmt.Errorf("model %s: Hugging Face directories are not readable yet: convert the model to GGUF (llama.cpp convert_hf_to_gguf.py)", path)
}

func describeHF(path string, opts LoadOptions) (*Model, error) {
	return loadHF(path, nil, opts)
}
