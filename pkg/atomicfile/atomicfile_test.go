package atomicfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	if err := WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("got %q, %v", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("perm = %v, want 0600", fi.Mode().Perm())
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("leftovers: %v", got)
	}
}

func TestWriteFailureLeavesOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o644, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "old" {
		t.Errorf("content = %q, want old", b)
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("leftovers: %v", got)
	}
}

func TestPublishDir(t *testing.T) {
	parent := t.TempDir()
	tmp, err := TempDir(parent, "out")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(tmp), TempPrefix) {
		t.Fatalf("temp dir %s lacks prefix", tmp)
	}
	os.WriteFile(filepath.Join(tmp, "f"), []byte("x"), 0o644)
	final := filepath.Join(parent, "out")
	if err := PublishDir(tmp, final); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(final, "f")); string(b) != "x" {
		t.Fatalf("published content %q", b)
	}
	tmp2, _ := TempDir(parent, "out")
	if err := PublishDir(tmp2, final); !errors.Is(err, ErrExist) {
		t.Fatalf("second publish: %v, want ErrExist", err)
	}
	if _, err := os.Stat(tmp2); err != nil {
		t.Errorf("second temp dir should be left for the caller: %v", err)
	}
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	// A finished process's pid: start one and wait for it.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := cmd.Process.Pid
	mk := func(name string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(TempPrefix + "stage-a-" + strconv.Itoa(dead) + "-123")
	mine, _ := TempDir(dir, "stage-b")
	mk(TempPrefix + "nopid")
	mk("kept")
	removed, err := CleanTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want the dead one and the pid-less one", removed)
	}
	got := strings.Join(names(t, dir), " ")
	if !strings.Contains(got, filepath.Base(mine)) || !strings.Contains(got, "kept") {
		t.Errorf("remaining %s: live temp dir or normal entry removed", got)
	}
	if _, err := CleanTemp(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}

// Published outputs are readable by other users (a service that loads the
// adapter runs as another user): directories 0755.
func TestTempDirIsWorldReadable(t *testing.T) {
	d, err := TempDir(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, want 0755", st.Mode().Perm())
	}
}
