// Package diag is lora's one type for user-facing problems: positioned, collected, rendered.
package diag

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Severity orders diagnostics by how much they matter.
type Severity int

// Severities, most severe first.
const (
	Error Severity = iota
	Warning
	Info
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	case Info:
		return "info"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity's name ("error", "warning", "info").
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = Error
	case "warning":
		*s = Warning
	case "info":
		*s = Info
	default:
		return fmt.Errorf("unknown severity %q (want error, warning or info)", b)
	}
	return nil
}

// Pos is a 1-based line and column (in characters). The zero Pos means
// "no position": the whole file, or a place outside any file.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// IsValid reports whether p names a place in a file.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Range is a span of a file; End is exclusive. File may name a pseudo-source
// such as "--set".
type Range struct {
	File  string `json:"file"`
	Start Pos    `json:"start"`
	End   Pos    `json:"end"`
}

// String formats the range as file:line:col (or just file).
func (r Range) String() string {
	if !r.Start.IsValid() {
		return r.File
	}
	return fmt.Sprintf("%s:%d:%d", r.File, r.Start.Line, r.Start.Col)
}

// At returns a one-character range at line:col of file.
func At(file string, line, col int) Range {
	return Range{File: file, Start: Pos{line, col}, End: Pos{line, col + 1}}
}

// Diagnostic is one problem. Code is a stable identifier tools may match on
// ("unknown-key", "cycle"); Message says what is wrong; Hint says what to do.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
	Range    Range    `json:"range"`
}

// Error formats the diagnostic on one line: file:line:col: severity: message (hint: ...).
func (d Diagnostic) Error() string {
	var b strings.Builder
	if loc := d.Range.String(); loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(d.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Errorf builds an error diagnostic.
func Errorf(r Range, code, format string, a ...any) Diagnostic {
	return Diagnostic{Severity: Error, Code: code, Message: fmt.Sprintf(format, a...), Range: r}
}

// Warningf builds a warning diagnostic.
func Warningf(r Range, code, format string, a ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Code: code, Message: fmt.Sprintf(format, a...), Range: r}
}

// WithHint returns d with its hint set.
func (d Diagnostic) WithHint(format string, a ...any) Diagnostic {
	d.Hint = fmt.Sprintf(format, a...)
	return d
}

// List is a collection of diagnostics. The zero List is empty and ready.
type List []Diagnostic

// Add appends diagnostics.
func (l *List) Add(d ...Diagnostic) { *l = append(*l, d...) }

// Sort orders by file, position, then severity, code and message, so output
// is stable whatever order the checks ran in.
func (l List) Sort() {
	slices.SortStableFunc(l, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Range.File, b.Range.File),
			cmp.Compare(a.Range.Start.Line, b.Range.Start.Line),
			cmp.Compare(a.Range.Start.Col, b.Range.Start.Col),
			cmp.Compare(a.Severity, b.Severity),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

// Dedupe sorts l and drops diagnostics that repeat an earlier one's file,
// start position and code (two checkers reporting the same problem).
func (l List) Dedupe() List {
	l.Sort()
	out := l[:0]
	for i, d := range l {
		if i > 0 {
			p := out[len(out)-1]
			if p.Range.File == d.Range.File && p.Range.Start == d.Range.Start && p.Code == d.Code {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// Count returns the number of diagnostics of severity s.
func (l List) Count(s Severity) int {
	n := 0
	for _, d := range l {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// HasErrors reports whether any diagnostic is an error.
func (l List) HasErrors() bool { return l.Count(Error) > 0 }

// Err returns nil when l holds no errors, otherwise an error that wraps every
// error diagnostic (errors.As finds a Diagnostic; errors.Is(err, ErrInvalid) holds).
func (l List) Err() error {
	if !l.HasErrors() {
		return nil
	}
	var errs []error
	for _, d := range l {
		if d.Severity == Error {
			errs = append(errs, d)
		}
	}
	return &listError{errs: errs}
}

// ErrInvalid is wrapped by every List.Err.
var ErrInvalid = errors.New("invalid input")

type listError struct{ errs []error }

func (e *listError) Error() string {
	if len(e.errs) == 1 {
		return e.errs[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors:", len(e.errs))
	for _, err := range e.errs {
		b.WriteString("\n\t")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *listError) Unwrap() []error { return append([]error{ErrInvalid}, e.errs...) }

// FromError collects the Diagnostics err wraps (as List.Err makes them),
// through errors.Join, %w chains and Unwrap() []error. It returns nil when
// there are none.
func FromError(err error) List {
	var out List
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case nil:
		case Diagnostic:
			out = append(out, x)
		case *Diagnostic:
			out = append(out, *x)
		case interface{ Unwrap() []error }:
			for _, w := range x.Unwrap() {
				walk(w)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}
