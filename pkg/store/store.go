// Package store is lora's content-addressed cache of fetched files, trees and stage outputs.
//
// Layout under the root ($LORA_CACHE, default os.UserCacheDir()/lora):
//
//	blobs/sha256/<hex>        fetched or imported files, named by the sha256 of their content (read-only)
//	trees/sha256/<hex>/       fetched directory trees, named by HashTree of their content
//	sources/<hex>.json        what a source string last resolved to (hex = sha256 of the source string)
//	stages/<key>/             published stage outputs, named by stage key; each holds stage.json
//	tmp/                      downloads in progress
//
// Every entry is written under a ".tmp-*" name and renamed into place, so a
// reader sees a whole entry or none. See docs/runs.md.
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lora-dev/lora/pkg/atomicfile"
)

// Env names the environment variable that overrides the store root.
const Env = "LORA_CACHE"

// ErrTooLarge is returned when content exceeds a size limit.
var ErrTooLarge = errors.New("content exceeds the size limit")

// Store is a content-addressed store rooted at a directory.
type Store struct {
	root string
}

// DefaultRoot returns $LORA_CACHE, or lora's directory under the user cache dir.
func DefaultRoot() (string, error) {
	if r := os.Getenv(Env); r != "" {
		return filepath.Abs(r)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w (set %s to choose one)", err, Env)
	}
	return filepath.Join(d, "lora"), nil
}

// Open opens (creating if needed) the store at root and removes leftovers of
// killed writers.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	s := &Store{root: abs}
	for _, d := range []string{s.blobDir(), s.treeDir(), s.sourceDir(), s.stageDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w (set %s to a writable directory)", abs, err, Env)
		}
		if _, err := atomicfile.CleanTemp(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string   { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) treeDir() string   { return filepath.Join(s.root, "trees", "sha256") }
func (s *Store) sourceDir() string { return filepath.Join(s.root, "sources") }
func (s *Store) stageDir() string  { return filepath.Join(s.root, "stages") }
func (s *Store) tmpDir() string    { return filepath.Join(s.root, "tmp") }

// TempDir makes an empty scratch directory inside the store (on the same
// filesystem as its entries, so results can be renamed in). Leftovers of a
// killed process are removed by the next Open.
func (s *Store) TempDir(name string) (string, error) { return atomicfile.TempDir(s.tmpDir(), name) }

// ValidSum reports whether sum is a sha256 in lowercase hex.
func ValidSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	for _, c := range sum {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// BlobPath returns where the blob with this sha256 lives (present or not).
func (s *Store) BlobPath(sum string) string { return filepath.Join(s.blobDir(), sum) }

// Blob returns the path of the blob with this sha256 when the store has it.
func (s *Store) Blob(sum string) (string, bool) {
	if !ValidSum(sum) {
		return "", false
	}
	p := s.BlobPath(sum)
	fi, err := os.Stat(p)
	return p, err == nil && fi.Mode().IsRegular()
}

// PutReader stores r's content as a blob, hashing while copying. limit > 0
// caps the size (ErrTooLarge beyond it). It returns the sha256 and size.
func (s *Store) PutReader(r io.Reader, limit int64) (sum string, size int64, err error) {
	f, err := os.CreateTemp(s.blobDir(), atomicfile.TempPrefix+"blob-"+pidString()+"-*")
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	src := r
	if limit > 0 {
		src = io.LimitReader(r, limit+1)
	}
	size, err = io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	if limit > 0 && size > limit {
		return "", 0, fmt.Errorf("store blob: %w (%d bytes)", ErrTooLarge, limit)
	}
	if err = f.Chmod(0o444); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	if err = f.Sync(); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if _, ok := s.Blob(sum); ok {
		os.Remove(tmp)
		return sum, size, nil
	}
	if err = os.Rename(tmp, s.BlobPath(sum)); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	return sum, size, atomicfile.SyncDir(s.blobDir())
}

// PutFile stores a copy of the regular file at path as a blob.
func (s *Store) PutFile(path string, limit int64) (sum string, size int64, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", 0, fmt.Errorf("import %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("import %s: not a regular file (symlinks and devices are refused)", path)
	}
	if limit > 0 && fi.Size() > limit {
		return "", 0, fmt.Errorf("import %s: %w (%d > %d bytes)", path, ErrTooLarge, fi.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	sum, size, err = s.PutReader(f, limit)
	if err != nil {
		return "", 0, fmt.Errorf("import %s: %w", path, err)
	}
	return sum, size, nil
}

// VerifyBlob rehashes a stored blob and reports an error when it is missing
// or its content no longer matches its name.
func (s *Store) VerifyBlob(sum string) error {
	p, ok := s.Blob(sum)
	if !ok {
		return fmt.Errorf("blob %s: %w", sum, fs.ErrNotExist)
	}
	got, _, err := HashFile(p)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("blob %s is corrupt (content hashes to %s); delete it and fetch again", p, got)
	}
	return nil
}

// HashFile returns the sha256 and size of a file's content.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// HashBytes returns the sha256 of b in lowercase hex.
func HashBytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TreeFile is one regular file in a tree listing.
type TreeFile struct {
	Path   string `json:"path"` // slash-separated, relative to the tree root
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Exec   bool   `json:"exec,omitempty"`
}

// ListTree hashes every regular file under dir, in path order. Symlinks and
// special files are refused: a fetched tree must be plain files.
func ListTree(dir string) ([]TreeFile, error) {
	var out []TreeFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("hash tree %s: %w", dir, err)
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.Type().IsRegular() {
			return fmt.Errorf("hash tree %s: %s is not a regular file (symlinks are refused)", dir, rel)
		}
		sum, size, err := HashFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, TreeFile{Path: filepath.ToSlash(rel), SHA256: sum, Size: size, Exec: fi.Mode()&0o111 != 0})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// TreeSum is the hash of a tree listing: sha256 over one line per file,
// "<sha256> <x|-> <path>\n", in path order. Empty directories do not count.
func TreeSum(files []TreeFile) string {
	h := sha256.New()
	for _, f := range files {
		x := "-"
		if f.Exec {
			x = "x"
		}
		fmt.Fprintf(h, "%s %s %s\n", f.SHA256, x, f.Path)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// HashTree returns TreeSum(ListTree(dir)).
func HashTree(dir string) (string, error) {
	files, err := ListTree(dir)
	if err != nil {
		return "", err
	}
	return TreeSum(files), nil
}

// Tree returns the path of the stored tree with this hash when present.
func (s *Store) Tree(sum string) (string, bool) {
	if !ValidSum(sum) {
		return "", false
	}
	p := filepath.Join(s.treeDir(), sum)
	fi, err := os.Stat(p)
	return p, err == nil && fi.IsDir()
}

// PutTree stores a copy of the tree at dir and returns its hash.
func (s *Store) PutTree(dir string) (string, error) {
	sum, err := HashTree(dir)
	if err != nil {
		return "", err
	}
	if _, ok := s.Tree(sum); ok {
		return sum, nil
	}
	tmp, err := atomicfile.TempDir(s.treeDir(), "tree")
	if err != nil {
		return "", err
	}
	if err := CopyTree(dir, tmp, false); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := atomicfile.PublishDir(tmp, filepath.Join(s.treeDir(), sum)); err != nil {
		os.RemoveAll(tmp)
		if !errors.Is(err, atomicfile.ErrExist) {
			return "", err
		}
	}
	return sum, nil
}

// CopyTree copies the regular files and directories under src into dst
// (which must exist). With link it hard-links files when it can and copies
// otherwise. Symlinks and special files are refused.
func CopyTree(src, dst string, link bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			return CopyFile(p, target, link)
		default:
			return fmt.Errorf("copy %s: %s is not a regular file (symlinks are refused)", src, rel)
		}
	})
}

// CopyFile copies a regular file, or hard-links it when link is set and the
// filesystem allows. The destination must not exist.
func CopyFile(src, dst string, link bool) error {
	if link {
		if err := os.Link(src, dst); err == nil {
			return nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()|0o200)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// Source records what a source string resolved to when it was last fetched
// or imported. It lets `lora cache ls` say which sources a blob satisfies and
// lets offline runs find unpinned sources.
type Source struct {
	Source string    `json:"source"`
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size"`
	Tree   bool      `json:"tree,omitempty"`
	Time   time.Time `json:"time"`
}

func (s *Store) sourcePath(source string) string {
	return filepath.Join(s.sourceDir(), HashBytes([]byte(source))+".json")
}

// RecordSource remembers that src.Source resolved to src.SHA256.
func (s *Store) RecordSource(src Source) error {
	if src.Time.IsZero() {
		src.Time = time.Now().UTC()
	}
	b, err := json.MarshalIndent(src, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.sourcePath(src.Source), append(b, '\n'), 0o644)
}

// LookupSource returns what source last resolved to, if the store knows.
func (s *Store) LookupSource(source string) (Source, bool) {
	b, err := os.ReadFile(s.sourcePath(source))
	if err != nil {
		return Source{}, false
	}
	var src Source
	if json.Unmarshal(b, &src) != nil || src.Source != source || !ValidSum(src.SHA256) {
		return Source{}, false
	}
	return src, true
}

// Sources lists every recorded source, sorted by source string.
func (s *Store) Sources() ([]Source, error) {
	ents, err := os.ReadDir(s.sourceDir())
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	var out []Source
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.sourceDir(), e.Name()))
		if err != nil {
			continue
		}
		var src Source
		if json.Unmarshal(b, &src) == nil && ValidSum(src.SHA256) {
			out = append(out, src)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out, nil
}

// Entry is one item in a store listing.
type Entry struct {
	Kind string // "blob", "tree" or "stage"
	Name string // sha256 or stage key
	Path string
	Size int64 // bytes (total for trees and stages)
	Time time.Time
}

// Blobs lists the stored blobs.
func (s *Store) Blobs() ([]Entry, error) { return s.list("blob", s.blobDir()) }

// Trees lists the stored trees.
func (s *Store) Trees() ([]Entry, error) { return s.list("tree", s.treeDir()) }

// Stages lists the published stage outputs.
func (s *Store) Stages() ([]Entry, error) { return s.list("stage", s.stageDir()) }

func (s *Store) list(kind, dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []Entry
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		size := fi.Size()
		if e.IsDir() {
			size = 0
			filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if i, err := d.Info(); err == nil {
						size += i.Size()
					}
				}
				return nil
			})
		}
		out = append(out, Entry{Kind: kind, Name: e.Name(), Path: p, Size: size, Time: fi.ModTime()})
	}
	return out, nil
}

// StagePath returns where the stage output with this key lives (present or not).
func (s *Store) StagePath(key string) string { return filepath.Join(s.stageDir(), key) }

// Stage returns the path of the published stage output with this key, when
// the store has it (a directory holding stage.json).
func (s *Store) Stage(key string) (string, bool) {
	if !ValidSum(key) {
		return "", false
	}
	p := s.StagePath(key)
	fi, err := os.Stat(filepath.Join(p, "stage.json"))
	return p, err == nil && fi.Mode().IsRegular()
}

// StageTemp makes an empty temporary directory for a stage output that
// PublishStage later moves into place.
func (s *Store) StageTemp(key string) (string, error) {
	return atomicfile.TempDir(s.stageDir(), key[:min(len(key), 16)])
}

// PublishStage moves a finished stage output into the store under key and
// returns its path. When another writer published the same key first, tmp is
// removed and the existing output is returned: equal keys mean equal outputs.
func (s *Store) PublishStage(tmp, key string) (string, error) {
	if !ValidSum(key) {
		return "", fmt.Errorf("publish stage: invalid key %q", key)
	}
	final := s.StagePath(key)
	if err := atomicfile.PublishDir(tmp, final); err != nil {
		if errors.Is(err, atomicfile.ErrExist) {
			if _, ok := s.Stage(key); ok {
				os.RemoveAll(tmp)
				return final, nil
			}
			// A stale entry without stage.json (cannot be made by PublishDir,
			// but a user may have edited the cache): replace it.
			if rerr := os.RemoveAll(final); rerr != nil {
				return "", fmt.Errorf("publish stage: %w", rerr)
			}
			return final, atomicfile.PublishDir(tmp, final)
		}
		return "", err
	}
	return final, nil
}

// RemoveStage deletes a stage output from the store.
func (s *Store) RemoveStage(key string) error {
	if !ValidSum(key) {
		return fmt.Errorf("remove stage: invalid key %q", key)
	}
	return os.RemoveAll(s.StagePath(key))
}

func pidString() string { return fmt.Sprint(os.Getpid()) }
