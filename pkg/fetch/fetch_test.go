package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lora-dev/lora/pkg/store"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// server serves files from a map and counts requests.
func server(t *testing.T, files map[string][]byte) (*httptest.Server, *atomic.Int64) {
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &gets
}

func TestIsLocalAndName(t *testing.T) {
	for _, tc := range []struct {
		src   string
		local bool
		name  string
	}{
		{"./data/alpaca.json", true, "alpaca.json"},
		{"/abs/x.gguf", true, "x.gguf"},
		{"file:///abs/y.txt", true, "y.txt"},
		{"https://host/p/model.gguf?download=true", false, "model.gguf"},
		{"git::https://github.com/o/repo.git", false, "repo"},
		{"git::https://github.com/o/repo.git//sub/dir?ref=v1", false, "repo"},
		{"s3::https://s3.amazonaws.com/b/k", false, "k"},
	} {
		if got := IsLocal(tc.src); got != tc.local {
			t.Errorf("IsLocal(%q) = %v", tc.src, got)
		}
		if got := Name(tc.src); got != tc.name {
			t.Errorf("Name(%q) = %q, want %q", tc.src, got, tc.name)
		}
	}
}

func TestLocalFile(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	data := []byte(`[{"instruction":"hi","output":"hello"}]`)
	os.WriteFile(filepath.Join(dir, "d.json"), data, 0o644)
	res, err := Get(context.Background(), "d.json", "", Options{Store: s, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sum(data) || !res.Local || res.Tree || res.Name != "d.json" {
		t.Fatalf("result %+v", res)
	}
	if b, _ := os.ReadFile(res.Path); string(b) != string(data) {
		t.Fatalf("stored content %q", b)
	}
	// Pinned and matching, then pinned and not: a ChecksumError with exit code 4.
	if _, err := Get(context.Background(), "d.json", sum(data), Options{Store: s, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d.json"), []byte("changed"), 0o644)
	_, err = Get(context.Background(), "d.json", sum(data), Options{Store: s, Dir: dir})
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Expected != sum(data) || ce.Actual != sum([]byte("changed")) || ce.ExitCode() != 4 {
		t.Fatalf("err = %v, want checksum error naming both sums", err)
	}
	if !strings.Contains(err.Error(), "d.json") {
		t.Errorf("error does not name the source: %v", err)
	}
	_, err = Get(context.Background(), "missing.json", "", Options{Store: s, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLocalDir(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "texts"), 0o755)
	os.WriteFile(filepath.Join(dir, "texts", "1.txt"), []byte("one"), 0o644)
	os.WriteFile(filepath.Join(dir, "texts", "2.txt"), []byte("two"), 0o644)
	res, err := Get(context.Background(), "texts", "", Options{Store: s, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := store.HashTree(filepath.Join(dir, "texts"))
	if !res.Tree || res.SHA256 != want || res.Size != 6 {
		t.Fatalf("result %+v, want tree %s", res, want)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Path, "2.txt")); string(b) != "two" {
		t.Fatalf("tree content %q", b)
	}
}

func TestHTTP(t *testing.T) {
	data := []byte("model bytes")
	srv, gets := server(t, map[string][]byte{"/m/model.gguf": data})
	s := newStore(t)
	src := srv.URL + "/m/model.gguf"
	res, err := Get(context.Background(), src, sum(data), Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sum(data) || res.Cached || res.Name != "model.gguf" {
		t.Fatalf("result %+v", res)
	}
	// Pinned content in the store: no second download, even online.
	res, err = Get(context.Background(), src, sum(data), Options{Store: s})
	if err != nil || !res.Cached || gets.Load() != 1 {
		t.Fatalf("second get: %+v %v, %d GETs", res, err, gets.Load())
	}
	// The store remembers the source.
	if rec, ok := s.LookupSource(src); !ok || rec.SHA256 != sum(data) {
		t.Errorf("source not recorded: %+v", rec)
	}
	// Wrong pin: checksum error, nothing stored under the wrong content.
	bad := sum([]byte("something else"))
	_, err = Get(context.Background(), src, bad, Options{Store: s})
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Actual != sum(data) {
		t.Fatalf("err = %v", err)
	}
	// 404 is an error naming the source.
	if _, err := Get(context.Background(), srv.URL+"/nope.bin", "", Options{Store: s}); err == nil || !strings.Contains(err.Error(), "nope.bin") {
		t.Fatalf("404: %v", err)
	}
}

func TestHTTPArchiveNotUnpackedByName(t *testing.T) {
	data := []byte("not really a tarball")
	srv, _ := server(t, map[string][]byte{"/x.tar.gz": data})
	res, err := Get(context.Background(), srv.URL+"/x.tar.gz", sum(data), Options{Store: newStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tree || res.Name != "x.tar.gz" {
		t.Fatalf("result %+v", res)
	}
}

func TestSizeLimit(t *testing.T) {
	data := []byte(strings.Repeat("x", 100))
	srv, _ := server(t, map[string][]byte{"/big.bin": data})
	s := newStore(t)
	_, err := Get(context.Background(), srv.URL+"/big.bin", "", Options{Store: s, MaxBytes: 50})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if _, err := Get(context.Background(), srv.URL+"/big.bin", "", Options{Store: s, MaxBytes: 100}); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644)
	if _, err := Get(context.Background(), "big.bin", "", Options{Store: s, Dir: dir, MaxBytes: 99}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("local over limit: %v", err)
	}
}

// TestSizeLimitStreams checks that an endless response is cut off at the
// limit rather than written to disk.
func TestSizeLimitStreams(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return
		}
		chunk := make([]byte, 64<<10)
		for i := 0; i < 1<<12; i++ { // up to 256 MiB
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := Get(context.Background(), srv.URL+"/endless.bin", "", Options{Store: newStore(t), MaxBytes: 1 << 20})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if sent.Load() > 64<<20 {
		t.Errorf("server sent %d bytes before the client stopped", sent.Load())
	}
}

func TestOffline(t *testing.T) {
	data := []byte("dataset")
	srv, gets := server(t, map[string][]byte{"/d.json": data})
	s := newStore(t)
	src := srv.URL + "/d.json"
	_, err := Get(context.Background(), src, sum(data), Options{Store: s, Offline: true})
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want MissingError", err)
	}
	msg := err.Error()
	for _, want := range []string{src, "lora cache import", sum(data)} {
		if !strings.Contains(msg, want) {
			t.Errorf("offline message lacks %q: %s", want, msg)
		}
	}
	if gets.Load() != 0 {
		t.Fatal("offline mode touched the network")
	}
	// Import by content, then offline works without the network.
	f := filepath.Join(t.TempDir(), "d.json")
	os.WriteFile(f, data, 0o644)
	if _, _, err := s.PutFile(f, 0); err != nil {
		t.Fatal(err)
	}
	res, err := Get(context.Background(), src, sum(data), Options{Store: s, Offline: true})
	if err != nil || !res.Cached || gets.Load() != 0 {
		t.Fatalf("offline after import: %+v %v", res, err)
	}
	// An unpinned source offline is a MissingError asking for a pin.
	_, err = Get(context.Background(), srv.URL+"/other.json", "", Options{Store: s, Offline: true})
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("unpinned offline: %v", err)
	}
}

func TestNotAllowed(t *testing.T) {
	s := newStore(t)
	for _, src := range []string{"ftp://host/x", "hg::https://host/repo", "smb://host/share/x", "s3::https://s3.amazonaws.com/b/k"} {
		if _, err := Get(context.Background(), src, "", Options{Store: s}); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s: err = %v, want ErrNotAllowed", src, err)
		}
	}
}

func TestGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repo := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(repo, "data"), 0o755)
	os.WriteFile(filepath.Join(repo, "data", "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "README"), []byte("readme\n"), 0o644)
	run("add", ".")
	run("commit", "-q", "-m", "init")

	// The expected tree hash, computed independently from the working tree minus .git.
	want := store.TreeSum([]store.TreeFile{
		{Path: "README", SHA256: sum([]byte("readme\n"))},
		{Path: "data/a.txt", SHA256: sum([]byte("alpha\n"))},
	})
	s := newStore(t)
	res, err := Get(context.Background(), "git::file://"+repo, want, Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Tree || res.SHA256 != want {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(res.Path, ".git")); err == nil {
		t.Error(".git kept in the stored tree")
	}
	// Subdirectory syntax.
	res, err = Get(context.Background(), "git::file://"+repo+"//data", "", Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Path, "a.txt")); string(b) != "alpha\n" {
		t.Fatalf("subdir content %q", b)
	}
	// Traversal out of the repository is refused.
	if _, err := Get(context.Background(), "git::file://"+repo+"//../..", "", Options{Store: s}); err == nil {
		t.Fatal("path traversal accepted")
	}
}

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestArchiveOnRequestWithinLimits(t *testing.T) {
	archive := tarGz(t, map[string]string{"a.txt": "alpha", "b.txt": "beta", "c.txt": "gamma"})
	evil := tarGz(t, map[string]string{"../escape.txt": "x"})
	bomb := tarGz(t, map[string]string{"zeros": strings.Repeat("\x00", 1<<20)})
	srv, _ := server(t, map[string][]byte{"/d.tar.gz": archive, "/evil.tar.gz": evil, "/bomb.tar.gz": bomb})
	s := newStore(t)
	res, err := Get(context.Background(), srv.URL+"/d.tar.gz?archive=tar.gz", "", Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	want := store.TreeSum([]store.TreeFile{
		{Path: "a.txt", SHA256: sum([]byte("alpha"))},
		{Path: "b.txt", SHA256: sum([]byte("beta"))},
		{Path: "c.txt", SHA256: sum([]byte("gamma"))},
	})
	if !res.Tree || res.SHA256 != want {
		t.Fatalf("unpacked %+v, want tree %s", res, want)
	}
	if _, err := Get(context.Background(), srv.URL+"/d.tar.gz?archive=tar.gz", "", Options{Store: s, MaxFiles: 2}); err == nil || !strings.Contains(err.Error(), "too many files") {
		t.Errorf("archive with more files than the limit: %v", err)
	}
	// A bomb: small to download, large unpacked.
	if len(bomb) > 10<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(bomb))
	}
	if _, err := Get(context.Background(), srv.URL+"/bomb.tar.gz?archive=tar.gz", "", Options{Store: s, MaxBytes: 10 << 10}); err == nil || !strings.Contains(err.Error(), "larger than limit") {
		t.Errorf("archive unpacking past the size limit: %v", err)
	}
	if _, err := Get(context.Background(), srv.URL+"/evil.tar.gz?archive=tar.gz", "", Options{Store: s}); err == nil || !strings.Contains(err.Error(), "..") {
		t.Errorf("archive entry escaping the destination: %v", err)
	}
}
