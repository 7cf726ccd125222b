// Package atomicfile writes files and publishes directories so that readers never see partial content.
//
// Files are written to a temporary sibling, fsynced, renamed over the target and
// the directory fsynced. Directories are built in a ".tmp-*" sibling and renamed
// into place. A process killed mid-write leaves only ".tmp-*" entries, which
// CleanTemp removes once the process that made them is gone.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TempPrefix starts the name of every temporary file or directory this package
// makes. Nothing else in lora's directories may start with it.
const TempPrefix = ".tmp-"

// ErrExist is returned by PublishDir when the destination already exists.
var ErrExist = fs.ErrExist

// tempPattern returns a temporary name for base that records the creating pid,
// so that CleanTemp can tell a live writer's files from a dead one's.
func tempPattern(base string) string {
	base = strings.TrimPrefix(base, ".")
	if len(base) > 64 {
		base = base[:64]
	}
	return TempPrefix + base + "-" + strconv.Itoa(os.Getpid()) + "-*"
}

// WriteFile writes data to path atomically with permissions perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write calls fn with a writer for a temporary sibling of path and, when fn
// succeeds, fsyncs it and renames it to path. On any error path is untouched.
func Write(path string, perm fs.FileMode, fn func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fn(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that renames inside it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		// Some filesystems do not support fsync on directories; that is not
		// a reason to fail a write that already happened.
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return nil
}

// TempDir makes an empty temporary directory in parent for later publication
// as parent/name with PublishDir. parent is created if needed.
func TempDir(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("make temporary directory in %s: %w", parent, err)
	}
	d, err := os.MkdirTemp(parent, tempPattern(name))
	if err != nil {
		return "", fmt.Errorf("make temporary directory in %s: %w", parent, err)
	}
	// MkdirTemp makes the directory 0700; a published output must be readable
	// by other users (a service loading the adapter), like every other file.
	if err := os.Chmod(d, 0o755); err != nil {
		os.Remove(d)
		return "", err
	}
	return d, nil
}

// PublishDir fsyncs every file under tmp and renames tmp to final. If final
// already exists it returns an error wrapping ErrExist and leaves both alone;
// the caller decides whether the existing one is as good (content-addressed
// directories are) and removes tmp.
func PublishDir(tmp, final string) error {
	if err := SyncTree(tmp); err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("publish %s: %w", final, ErrExist)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Renaming a directory over a non-empty directory fails with
		// ENOTEMPTY or EEXIST: someone else published first.
		if _, serr := os.Lstat(final); serr == nil {
			return fmt.Errorf("publish %s: %w", final, ErrExist)
		}
		return fmt.Errorf("publish %s: %w", final, err)
	}
	return SyncDir(filepath.Dir(final))
}

// SyncTree fsyncs every regular file and directory under root.
func SyncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		serr := f.Sync()
		cerr := f.Close()
		if serr != nil && !d.IsDir() {
			return fmt.Errorf("sync %s: %w", p, serr)
		}
		if cerr != nil {
			return fmt.Errorf("sync %s: %w", p, cerr)
		}
		return nil
	})
}

// CleanTemp removes the ".tmp-*" entries directly inside dir whose creating
// process is no longer alive (or whose name does not record one). It returns
// the names it removed. A missing dir is not an error.
func CleanTemp(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, TempPrefix) {
			continue
		}
		if pid, ok := pidOf(name); ok && (pid == os.Getpid() || alive(pid)) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return removed, fmt.Errorf("clean %s: %w", dir, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// pidOf extracts the pid from ".tmp-<base>-<pid>-<random>".
func pidOf(name string) (int, bool) {
	parts := strings.Split(name, "-")
	if len(parts) < 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}
