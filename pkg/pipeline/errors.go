package pipeline

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/lora-dev/lora/pkg/fetch"
)

// ChecksumError reports content whose sha256 differs from the pinned one (exit code 4).
type ChecksumError = fetch.ChecksumError

// GateError reports a gate that was not met (exit code 3). A kind returns it
// from Run after writing its output: the runner publishes the output (the
// measurements are worth keeping), records the gate in stage.json and stops
// the run. A later run that reuses the output fails the same way.
type GateError struct {
	Stage  string
	Expr   string
	Values map[string]any // the values the expression saw
}

func (e *GateError) Error() string {
	var vals []string
	for k, v := range e.Values {
		vals = append(vals, fmt.Sprintf("%s = %v", k, v))
	}
	sort.Strings(vals)
	s := fmt.Sprintf("stage %s: gate `%s` not met", e.Stage, e.Expr)
	if len(vals) > 0 {
		s += " (" + strings.Join(vals, ", ") + ")"
	}
	return s
}

// ExitCode is 3: a gate was not met.
func (e *GateError) ExitCode() int { return 3 }

// StageError is a stage's failure; it names the stage and keeps the exit
// code of the cause (gate 3, checksum 4, otherwise 1).
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string {
	var g *GateError
	if errors.As(e.Err, &g) {
		return e.Err.Error()
	}
	return fmt.Sprintf("stage %s failed: %v", e.Stage, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// ExitCode returns the cause's exit code, or 1.
func (e *StageError) ExitCode() int {
	var ec interface{ ExitCode() int }
	if errors.As(e.Err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
