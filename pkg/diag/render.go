package diag

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// JSONVersion is the version of the document WriteJSON writes. It changes
// only when a field is removed or changes meaning.
const JSONVersion = 1

// Document is the versioned JSON form of a List.
type Document struct {
	Version     int          `json:"version"`
	Errors      int          `json:"errors"`
	Warnings    int          `json:"warnings"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// WriteJSON writes l as an indented versioned Document.
func WriteJSON(w io.Writer, l List) error {
	doc := Document{Version: JSONVersion, Errors: l.Count(Error), Warnings: l.Count(Warning), Diagnostics: l}
	if doc.Diagnostics == nil {
		doc.Diagnostics = List{}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode diagnostics: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Text renders diagnostics for people.
type Text struct {
	// Color adds ANSI colors; set it only when the output is a terminal.
	Color bool
	// Sources maps a Range.File to its contents, for the source snippet.
	// Files not in it are read from disk once (and skipped if unreadable).
	Sources map[string][]byte
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[1;31m"
	ansiYel   = "\x1b[1;33m"
	ansiBlue  = "\x1b[1;34m"
	ansiCyan  = "\x1b[36m"
)

// Write renders each diagnostic as
//
//	file:line:col: error: message
//	   12 | the source line
//	      |     ^^^^
//	hint: what to do
func (t Text) Write(w io.Writer, l List) error {
	bw := bufio.NewWriter(w)
	if t.Sources == nil {
		t.Sources = map[string][]byte{}
	}
	for _, d := range l {
		t.one(bw, d)
	}
	return bw.Flush()
}

func (t Text) paint(code, s string) string {
	if !t.Color {
		return s
	}
	return code + s + ansiReset
}

func (t Text) one(w *bufio.Writer, d Diagnostic) {
	sevColor := ansiRed
	switch d.Severity {
	case Warning:
		sevColor = ansiYel
	case Info:
		sevColor = ansiBlue
	}
	if loc := d.Range.String(); loc != "" {
		fmt.Fprintf(w, "%s: ", t.paint(ansiBold, loc))
	}
	fmt.Fprintf(w, "%s: %s\n", t.paint(sevColor, d.Severity.String()), d.Message)
	if line, ok := t.line(d.Range.File, d.Range.Start.Line); ok {
		num := fmt.Sprint(d.Range.Start.Line)
		pad := strings.Repeat(" ", len(num))
		fmt.Fprintf(w, " %s | %s\n", t.paint(ansiCyan, num), line)
		fmt.Fprintf(w, " %s | %s\n", pad, t.paint(sevColor, underline(line, d.Range)))
	}
	if d.Hint != "" {
		fmt.Fprintf(w, "%s: %s\n", t.paint(ansiCyan, "hint"), d.Hint)
	}
}

// underline builds the caret line under line for r: the prefix keeps tabs so
// the carets align, then one '^' per character of the range on this line.
func underline(line string, r Range) string {
	n := utf8.RuneCountInString(line)
	start := r.Start.Col - 1
	if start < 0 {
		start = 0
	}
	if start > n {
		start = n
	}
	end := n
	if r.End.Line == r.Start.Line && r.End.Col > r.Start.Col {
		end = min(r.End.Col-1, n)
	}
	var b strings.Builder
	i := 0
	for _, c := range line {
		if i >= start {
			break
		}
		if c == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	b.WriteString(strings.Repeat("^", max(1, end-start)))
	return b.String()
}

func (t Text) line(file string, n int) (string, bool) {
	if file == "" || n <= 0 {
		return "", false
	}
	src, ok := t.Sources[file]
	if !ok {
		b, err := os.ReadFile(file)
		if err != nil {
			b = nil
		}
		t.Sources[file] = b
		src = b
	}
	if src == nil {
		return "", false
	}
	for i := 1; ; i++ {
		j := bytes.IndexByte(src, '\n')
		if i == n {
			if j >= 0 {
				src = src[:j]
			}
			return strings.TrimRight(string(src), "\r"), true
		}
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
}
