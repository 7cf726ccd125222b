// Package lock reads and writes lora.lock, the record of exactly what a run used and did.
//
// A lock file is JSON (format version 1, documented in docs/runs.md). It holds
// the recipe source itself with its sha256 and git state, the overrides and
// the resolved recipe, every input's source and sha256, the tool version,
// seed and device, each stage's key and key material, and the outcome.
// `lora rerun` reads it to repeat a run exactly.
package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lora-dev/lora/pkg/atomicfile"
)

// FileName is the lock file's name inside a run directory.
const FileName = "lora.lock"

// FormatVersion is the version of the lock file format this package writes.
const FormatVersion = 1

// maxSize bounds the lock files Read accepts.
const maxSize = 64 << 20

// Run statuses.
const (
	StatusRunning     = "running"
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusGate        = "gate-failed"
	StatusChecksum    = "checksum-mismatch"
	StatusInterrupted = "interrupted"
)

// Stage statuses.
const (
	StageRan     = "ran"
	StageCached  = "cached"
	StageSkipped = "skipped"
	StageFailed  = "failed"
	StageRunning = "running"
	StagePending = "pending"
)

// Lock is the content of lora.lock.
type Lock struct {
	Version   int            `json:"version"`
	Tool      Tool           `json:"tool"`
	Created   time.Time      `json:"created"`
	Updated   time.Time      `json:"updated"`
	RunID     string         `json:"run_id"`
	Name      string         `json:"name"` // the recipe's name
	Recipe    Recipe         `json:"recipe"`
	Overrides []string       `json:"overrides,omitempty"` // --set arguments, in order
	Resolved  map[string]any `json:"resolved,omitempty"`  // the recipe after defaults and overrides
	Seed      uint64         `json:"seed"`
	Device    Device         `json:"device"`
	Offline   bool           `json:"offline,omitempty"`
	Until     string         `json:"until,omitempty"`
	Model     *Input         `json:"model,omitempty"`
	Inputs    []Input        `json:"inputs,omitempty"` // fetched sources and local files, in stage order
	Stages    []Stage        `json:"stages"`
	Status    string         `json:"status"`
	Error     string         `json:"error,omitempty"`
}

// Tool identifies the lora binary that made the run.
type Tool struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Shaders string `json:"shaders,omitempty"` // hash of the embedded shader set, when known
}

// Recipe records the recipe file.
type Recipe struct {
	Path   string `json:"path"`   // as given on the command line
	Abs    string `json:"abs"`    // absolute path at run time
	SHA256 string `json:"sha256"` // of Source
	Source string `json:"source"` // the recipe file's bytes
	Git    *Git   `json:"git,omitempty"`
}

// Git records the recipe's repository state; absent when it is not in one.
type Git struct {
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"` // the recipe file differs from the commit
	Path   string `json:"path"`  // the recipe's path inside the repository
}

// Device records the requested and the resolved device.
type Device struct {
	Requested string `json:"requested"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Input is one fetched or local input.
type Input struct {
	Stage  string `json:"stage,omitempty"` // the stage that uses it ("" for the model)
	Role   string `json:"role"`            // "model", "fetch" or "file"
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
	Tree   bool   `json:"tree,omitempty"`
}

// Stage records one stage's key and outcome.
type Stage struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	Key      string          `json:"key,omitempty"`
	Material json.RawMessage `json:"material,omitempty"` // what the key hashes
	Status   string          `json:"status"`
	Reason   string          `json:"reason,omitempty"` // why it ran, or why it was skipped
	Seconds  float64         `json:"seconds,omitempty"`
	Metrics  map[string]any  `json:"metrics,omitempty"`
	Gate     *Gate           `json:"gate,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Reproduced is set when a stage ran although its key was stored (rerun,
	// --force): whether the new output's files equal the stored ones.
	Reproduced *bool `json:"reproduced,omitempty"`
}

// Gate records a gate's outcome.
type Gate struct {
	Expr   string `json:"expr"`
	Passed bool   `json:"passed"`
}

// Stage returns the stage record with this name, or nil.
func (l *Lock) Stage(name string) *Stage {
	for i := range l.Stages {
		if l.Stages[i].Name == name {
			return &l.Stages[i]
		}
	}
	return nil
}

// Write writes the lock atomically to path.
func (l *Lock) Write(path string) error {
	if l.Version == 0 {
		l.Version = FormatVersion
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

// Read reads a lock file, or the lora.lock inside a run directory.
func Read(path string) (*Lock, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read lock: %s does not exist (give a run directory or its %s)", path, FileName)
		}
		return nil, fmt.Errorf("read lock: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read lock %s: %w", path, err)
	}
	if fi.Size() > maxSize {
		return nil, fmt.Errorf("read lock %s: %d bytes is more than the %d-byte limit", path, fi.Size(), maxSize)
	}
	var l Lock
	dec := json.NewDecoder(f)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("read lock %s: not a lora lock file: %w", path, err)
	}
	if l.Version != FormatVersion {
		return nil, fmt.Errorf("read lock %s: format version %d is not supported (this lora reads version %d)", path, l.Version, FormatVersion)
	}
	return &l, nil
}

// GitInfo returns the git state of file, or nil when it is not in a git
// repository (or git is not installed).
func GitInfo(file string) *Git {
	if _, err := exec.LookPath("git"); err != nil {
		return nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil
	}
	dir := filepath.Dir(abs)
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	commit, err := git("rev-parse", "HEAD")
	if err != nil || commit == "" {
		return nil
	}
	g := &Git{Commit: commit}
	if rel, err := git("ls-files", "--full-name", "--", filepath.Base(abs)); err == nil && rel != "" {
		g.Path = rel
	} else {
		// Not tracked: the file is not part of the commit at all.
		g.Dirty = true
		if top, err := git("rev-parse", "--show-toplevel"); err == nil {
			if r, err := filepath.Rel(top, abs); err == nil {
				g.Path = filepath.ToSlash(r)
			}
		}
		return g
	}
	status, err := git("status", "--porcelain", "--", filepath.Base(abs))
	if err != nil {
		return nil
	}
	g.Dirty = status != ""
	return g
}
