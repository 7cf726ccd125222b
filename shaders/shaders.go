// Package shaders embeds lora's compiled SPIR-V compute kernels (sources beside it, built by build.sh).
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

//go:embed spv/*.spv
var spv embed.FS

// Get returns the SPIR-V of the named variant (for example "gemm_nt_q4_0").
func Get(name string) ([]byte, error) {
	b, err := spv.ReadFile("spv/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shader %q is not embedded (run make shaders): %w", name, err)
	}
	return b, nil
}

// Names lists the embedded variants.
func Names() []string {
	ents, _ := fs.ReadDir(spv, "spv")
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".spv"))
	}
	return out
}
