package lock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	l := &Lock{
		RunID:     "20260101T000000Z-abcd",
		Name:      "demo",
		Recipe:    Recipe{Path: "r.yaml", SHA256: strings.Repeat("a", 64), Source: "version: 1\n"},
		Overrides: []string{"train.lora.rank=16"},
		Seed:      42,
		Device:    Device{Requested: "cpu", Kind: "cpu"},
		Inputs:    []Input{{Stage: "data", Role: "fetch", Source: "./d.json", SHA256: strings.Repeat("b", 64)}},
		Stages:    []Stage{{Name: "data", Kind: "fetch", Key: strings.Repeat("c", 64), Status: StageRan}},
		Status:    StatusOK,
	}
	if err := l.Write(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir) // a run directory works too
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != FormatVersion || got.Recipe.Source != l.Recipe.Source || got.Seed != 42 ||
		got.Overrides[0] != "train.lora.rank=16" || got.Stage("data").Key != l.Stages[0].Key || got.Stage("x") != nil {
		t.Fatalf("round trip lost data: %+v", got)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":  "not json",
		"version2": `{"version":2}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := Read(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing: %v", err)
	}
}

func TestGitInfo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// Outside a repository: nil.
	outside := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(outside, []byte("x"), 0o644)
	if g := GitInfo(outside); g != nil {
		t.Fatalf("GitInfo outside a repo = %+v", g)
	}
	git("init", "-q")
	os.MkdirAll(filepath.Join(repo, "recipes"), 0o755)
	f := filepath.Join(repo, "recipes", "r.yaml")
	os.WriteFile(f, []byte("version: 1\n"), 0o644)
	if g := GitInfo(f); g != nil {
		t.Fatalf("no commit yet, got %+v", g)
	}
	git("add", ".")
	git("commit", "-q", "-m", "init")
	head := git("rev-parse", "HEAD")
	g := GitInfo(f)
	if g == nil || g.Commit != head || g.Dirty || g.Path != "recipes/r.yaml" {
		t.Fatalf("clean: %+v, want commit %s", g, head)
	}
	os.WriteFile(f, []byte("version: 1\nname: x\n"), 0o644)
	if g := GitInfo(f); g == nil || !g.Dirty {
		t.Fatalf("modified: %+v", g)
	}
	other := filepath.Join(repo, "recipes", "new.yaml")
	os.WriteFile(other, []byte("x"), 0o644)
	if g := GitInfo(other); g == nil || !g.Dirty {
		t.Fatalf("untracked: %+v", g)
	}
}
