package shaders

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCommittedSPIRVMatchesSources recompiles every variant and fails if a
// committed .spv differs from what its GLSL compiles to (run make shaders).
func TestCommittedSPIRVMatchesSources(t *testing.T) {
	if _, err := exec.LookPath("glslc"); err != nil {
		t.Skip("glslc not installed: cannot check the committed SPIR-V against its sources (apt-get install glslc)")
	}
	if testing.Short() {
		t.Skip("recompiling every shader takes ~20 s; skipped with -short")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "build.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	fresh, err := filepath.Glob(filepath.Join(dir, "*.spv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != len(Names()) {
		t.Errorf("build.sh produced %d variants, %d are embedded: run make shaders and commit shaders/spv", len(fresh), len(Names()))
	}
	for _, f := range fresh {
		name := filepath.Base(f)
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Get(name[:len(name)-len(".spv")])
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("shaders/spv/%s differs from what its source compiles to: run make shaders and commit shaders/spv", name)
		}
	}
}

func TestEmbeddedAreSPIRV(t *testing.T) {
	names := Names()
	if len(names) == 0 {
		t.Fatal("no shaders embedded")
	}
	for _, n := range names {
		b, err := Get(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 20 || len(b)%4 != 0 || !bytes.Equal(b[:4], []byte{0x03, 0x02, 0x23, 0x07}) {
			t.Errorf("%s: not a SPIR-V module (len %d)", n, len(b))
		}
	}
}
