package backendtest

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
)

// TestRef runs the kit with the reference against a second reference instance.
func TestRef(t *testing.T) {
	b := ref.New()
	defer b.Close()
	Run(t, b, Options{})
}

// buggy wraps ref and breaks one behaviour, chosen by name.
type buggy struct {
	backend.Backend
	bug string
}

// perturb adds d to the last element of t.
func (b buggy) perturb(t backend.Tensor, d float32) {
	v := make([]float32, t.Len())
	if err := b.Read(t, v); err != nil {
		panic(err)
	}
	v[len(v)-1] += d
	if err := b.Write(t, v); err != nil {
		panic(err)
	}
}

func (b buggy) MatMul(out, x, w backend.Tensor, acc bool) error {
	err := b.Backend.MatMul(out, x, w, acc)
	if b.bug == "matmul-q4" && w.DType() == backend.Q4_0 && out.Len() > 100 {
		b.perturb(out, 0.01)
	}
	return err
}

func (b buggy) MatMulDX(dx, dy, w backend.Tensor, acc bool) error {
	if b.bug == "dx-accumulate" {
		acc = false
	}
	return b.Backend.MatMulDX(dx, dy, w, acc)
}

func (b buggy) Dropout(out, x, seed backend.Tensor, stream uint32, p float32) error {
	if b.bug == "dropout-stream" {
		stream++
	}
	return b.Backend.Dropout(out, x, seed, stream, p)
}

func (b buggy) RoPE(x, pos backend.Tensor, p backend.RoPE, inverse bool) error {
	if b.bug == "rope-layout" && p.Layout == backend.RoPENeoX {
		p.Layout = backend.RoPENormal
	}
	return b.Backend.RoPE(x, pos, p, inverse)
}

func (b buggy) Copy(dst backend.Tensor, dstOff int, src backend.Tensor, srcOff, n int) error {
	if b.bug == "copy-offset" && srcOff > 0 {
		srcOff--
	}
	return b.Backend.Copy(dst, dstOff, src, srcOff, n)
}

func (b buggy) Mul(out, x, y backend.Tensor) error {
	if b.bug == "unchecked-mul" && (out.Len() != x.Len() || x.Len() != y.Len()) {
		return nil // a backend that would write out of bounds
	}
	return b.Backend.Mul(out, x, y)
}

// Record in the "record-stale" bug runs fn once at record time and replays nothing.
func (b buggy) Record(fn func() error) (backend.Program, error) {
	if b.bug == "record-stale" {
		if err := fn(); err != nil {
			return nil, err
		}
		return staleProgram{}, nil
	}
	return b.Backend.Record(fn)
}

type staleProgram struct{}

func (staleProgram) Run() error { return nil }
func (staleProgram) Release()   {}

// TestBuggy is the body of TestKitCatchesBugs's subprocesses.
func TestBuggy(t *testing.T) {
	bug := os.Getenv("BACKENDTEST_BUG")
	if bug == "" {
		t.Skip("run by TestKitCatchesBugs")
	}
	Run(t, buggy{Backend: ref.New(), bug: bug}, Options{})
}

// TestKitCatchesBugs runs the kit on deliberately broken backends (in
// subprocesses, since the kit must fail there) and checks that each bug is
// reported with the op, the case and the offending index.
func TestKitCatchesBugs(t *testing.T) {
	if os.Getenv("BACKENDTEST_BUG") != "" {
		t.Skip("inside a subprocess")
	}
	cases := []struct {
		bug, op string
		want    string // regexp the failure output must match
	}{
		{"matmul-q4", "MatMul", `MatMul q4_0 x \[33, 32\] · wᵀ \[130, 32\] accumulate=true: out\[32 129\] = .* want .* \(\|diff\| .* > tol .*\); 1 of 4290 elements out of tolerance`},
		{"dx-accumulate", "MatMulDX", `MatMulDX f32 dy \[33, 130\] · w \[130, 7\] accumulate=true: dx\[0 0\] = `},
		{"dropout-stream", "Dropout", `Dropout n=33 p=0.1 seed=-?\d+ stream=0: out\[\d+\] = .*\n(.|\n)*the mask differs from backend.DropoutKeep`},
		{"rope-layout", "RoPE", `RoPE neox x \[7, 16\] heads=2 head_dim=8 dims=8 theta=10000 positions=4 inverse=false: x\[0 \d+\] = `},
		{"copy-offset", "Copy", `Copy f32 dst \[130\] at 5, src \[77\] at 3, n=33: dst\[5\] = `},
		{"record-stale", "Record", `replay 2 gave the same loss as replay 1`},
		{"unchecked-mul", "Errors", `Errors: Mul lengths 12, 12, 30: accepted`},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBuggy$/^"+c.op+"$")
			cmd.Env = append(os.Environ(), "BACKENDTEST_BUG="+c.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("kit passed a backend with bug %s:\n%s", c.bug, out)
			}
			if !regexp.MustCompile(c.want).Match(out) {
				t.Errorf("output does not match %q:\n%s", c.want, out)
			}
		})
	}
}
