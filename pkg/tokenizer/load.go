package tokenizer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lora-dev/lora/pkg/gguf"
)

// Load reads a tokenizer from a GGUF file, a Hugging Face tokenizer.json,
// or a directory that holds a tokenizer.json. The kind is decided by the
// content (the GGUF magic), not the file name.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "tokenizer.json")); err != nil {
			return nil, fmt.Errorf("load tokenizer: %s has no tokenizer.json; pass a GGUF file or a Hugging Face model directory", path)
		}
		return FromHF(path)
	}
	isGGUF, err := hasGGUFMagic(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if !isGGUF {
		return FromHF(path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	defer f.Close()
	t, err := FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func hasGGUFMagic(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false, nil
	}
	return bytes.Equal(magic[:], []byte("GGUF")), nil
}
