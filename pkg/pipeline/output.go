package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/store"
)

// OutputFile is the name of the description every stage output holds.
const OutputFile = "stage.json"

// StageMetricsFile is the stage's own copy of the metrics it reported.
const StageMetricsFile = "metrics.jsonl"

// maxOutputSize bounds the stage.json files ReadOutput accepts.
const maxOutputSize = 64 << 20

// OutputVersion is the format version of stage.json.
const OutputVersion = 1

// Output is the content of stage.json, written last into every stage output.
type Output struct {
	Version  int              `json:"version"`
	Stage    string           `json:"stage"` // the stage's name in the recipe that made it
	Kind     string           `json:"kind"`
	Key      string           `json:"key"`
	Material *Material        `json:"material"`       // what the key hashes
	Main     string           `json:"main,omitempty"` // main file or directory, relative
	Files    []store.TreeFile `json:"files"`          // every file but stage.json, with sha256
	Metrics  map[string]any   `json:"metrics,omitempty"`
	Gate     *lock.Gate       `json:"gate,omitempty"`
	Source   *lock.Input      `json:"source,omitempty"` // fetch stages: what was fetched
	Seconds  float64          `json:"seconds"`
}

// MainPath returns the absolute path of the main file of the output in dir.
// With no main recorded, it is the only file when there is exactly one,
// else dir itself.
func (o *Output) MainPath(dir string) string {
	if o.Main != "" {
		return filepath.Join(dir, filepath.FromSlash(o.Main))
	}
	var files []string
	for _, f := range o.Files {
		if f.Path != StageMetricsFile {
			files = append(files, f.Path)
		}
	}
	if len(files) == 1 {
		return filepath.Join(dir, filepath.FromSlash(files[0]))
	}
	return dir
}

// ReadOutput reads dir/stage.json.
func ReadOutput(dir string) (*Output, error) {
	p := filepath.Join(dir, OutputFile)
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxOutputSize {
		return nil, fmt.Errorf("read %s: %d bytes is more than the %d-byte limit", p, fi.Size(), maxOutputSize)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a stage output (no %s)", dir, OutputFile)
		}
		return nil, err
	}
	var o Output
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, OutputFile), err)
	}
	if o.Version != OutputVersion {
		return nil, fmt.Errorf("read %s: format version %d is not supported", filepath.Join(dir, OutputFile), o.Version)
	}
	return &o, nil
}

// writeOutput lists dir's files and writes stage.json last.
func writeOutput(dir string, o *Output) error {
	files, err := store.ListTree(dir)
	if err != nil {
		return err
	}
	o.Files = files[:0]
	for _, f := range files {
		if f.Path != OutputFile {
			o.Files = append(o.Files, f)
		}
	}
	if o.Files == nil {
		o.Files = []store.TreeFile{}
	}
	o.Version = OutputVersion
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, OutputFile), buf.Bytes(), 0o644)
}

// VerifyOutput rehashes every file an output lists and reports the first
// that is missing or changed.
func VerifyOutput(dir string) error {
	o, err := ReadOutput(dir)
	if err != nil {
		return err
	}
	for _, f := range o.Files {
		sum, _, err := store.HashFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return fmt.Errorf("stage output %s: %w", dir, err)
		}
		if sum != f.SHA256 {
			return &ChecksumError{Source: filepath.Join(dir, f.Path), Expected: f.SHA256, Actual: sum}
		}
	}
	return nil
}
