package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestBlobs(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello lora\n")
	got, n, err := s.PutReader(strings.NewReader(string(data)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != sum(data) || n != int64(len(data)) {
		t.Fatalf("PutReader = %s %d, want %s %d", got, n, sum(data), len(data))
	}
	p, ok := s.Blob(got)
	if !ok {
		t.Fatal("blob missing after put")
	}
	if b, _ := os.ReadFile(p); string(b) != string(data) {
		t.Fatalf("blob content %q", b)
	}
	// Same content again: same name, no error, one blob.
	if again, _, err := s.PutReader(strings.NewReader(string(data)), 0); err != nil || again != got {
		t.Fatalf("second put: %s %v", again, err)
	}
	blobs, _ := s.Blobs()
	if len(blobs) != 1 {
		t.Fatalf("blobs = %v", blobs)
	}
	if err := s.VerifyBlob(got); err != nil {
		t.Fatal(err)
	}
	// Corrupt it: VerifyBlob notices.
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("tampered"), 0o644)
	if err := s.VerifyBlob(got); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("VerifyBlob on tampered blob: %v", err)
	}
}

func TestPutLimit(t *testing.T) {
	s, _ := Open(t.TempDir())
	_, _, err := s.PutReader(strings.NewReader("0123456789"), 9)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if _, _, err := s.PutReader(strings.NewReader("0123456789"), 10); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	ents, _ := os.ReadDir(s.blobDir())
	if len(ents) != 1 {
		t.Errorf("leftovers in blob dir: %v", ents)
	}
}

func TestPutFileRefusesSymlink(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "l"))
	if _, _, err := s.PutFile(filepath.Join(dir, "l"), 0); err == nil {
		t.Fatal("symlink imported")
	}
	if got, _, err := s.PutFile(filepath.Join(dir, "a"), 0); err != nil || got != sum([]byte("a")) {
		t.Fatalf("PutFile = %s, %v", got, err)
	}
}

func TestTrees(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "a.txt"), []byte("a"), 0o644)
	// The listing format is documented: check against an independent computation.
	want := sum([]byte(sum([]byte("b")) + " - b.txt\n" + sum([]byte("a")) + " - sub/a.txt\n"))
	got, err := HashTree(dir)
	if err != nil || got != want {
		t.Fatalf("HashTree = %s, %v; want %s", got, err, want)
	}
	put, err := s.PutTree(dir)
	if err != nil || put != want {
		t.Fatalf("PutTree = %s, %v", put, err)
	}
	p, ok := s.Tree(put)
	if !ok {
		t.Fatal("tree missing")
	}
	if again, _ := HashTree(p); again != want {
		t.Errorf("stored tree hashes to %s", again)
	}
	os.Symlink("b.txt", filepath.Join(dir, "link"))
	if _, err := HashTree(dir); err == nil {
		t.Error("tree with a symlink accepted")
	}
}

func TestSources(t *testing.T) {
	s, _ := Open(t.TempDir())
	src := Source{Source: "https://example.org/x.bin", SHA256: sum([]byte("x")), Size: 1}
	if err := s.RecordSource(src); err != nil {
		t.Fatal(err)
	}
	got, ok := s.LookupSource(src.Source)
	if !ok || got.SHA256 != src.SHA256 {
		t.Fatalf("LookupSource = %+v %v", got, ok)
	}
	if _, ok := s.LookupSource("https://example.org/other"); ok {
		t.Fatal("unknown source found")
	}
	all, _ := s.Sources()
	if len(all) != 1 {
		t.Fatalf("Sources = %v", all)
	}
}

func TestStages(t *testing.T) {
	s, _ := Open(t.TempDir())
	key := sum([]byte("key"))
	if _, ok := s.Stage(key); ok {
		t.Fatal("stage present before publish")
	}
	publish := func(content string) string {
		tmp, err := s.StageTemp(key)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "out.txt"), []byte(content), 0o644)
		os.WriteFile(filepath.Join(tmp, "stage.json"), []byte("{}"), 0o644)
		p, err := s.PublishStage(tmp, key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := publish("first")
	if p2 := publish("second"); p2 != p {
		t.Fatalf("second publish path %s != %s", p2, p)
	}
	if b, _ := os.ReadFile(filepath.Join(p, "out.txt")); string(b) != "first" {
		t.Fatalf("first publication replaced: %q", b)
	}
	ents, _ := os.ReadDir(s.stageDir())
	if len(ents) != 1 {
		t.Fatalf("stage dir holds %d entries, want 1", len(ents))
	}
	if _, err := s.PublishStage(t.TempDir(), "../evil"); err == nil {
		t.Fatal("invalid key accepted")
	}
}

func TestCopyTreeLink(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("f"), 0o644)
	for _, link := range []bool{false, true} {
		out := filepath.Join(dst, map[bool]string{false: "copy", true: "link"}[link])
		os.Mkdir(out, 0o755)
		if err := CopyTree(src, out, link); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "d", "f")); string(b) != "f" {
			t.Fatalf("link=%v: content %q", link, b)
		}
	}
}
