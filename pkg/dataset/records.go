// Package dataset turns JSON records into prompt texts with format files and into training examples.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/lora-dev/lora/pkg/diag"
)

// Record is one dataset record: its string fields. Fields whose value is
// empty or only white space are kept (a template may still name them) but
// do not count in the record's field set. JSON null counts as absent.
type Record struct {
	Index  int   // 0-based position in the file
	Offset int64 // byte offset of the record's opening brace
	Fields map[string]string
}

// Set returns the sorted names of the record's non-empty fields: the set a
// template's key must equal.
func (r Record) Set() []string {
	var s []string
	for k, v := range r.Fields {
		if strings.TrimSpace(v) != "" {
			s = append(s, k)
		}
	}
	slices.Sort(s)
	return s
}

// Limits on hostile input (variables for tests).
var (
	maxFieldsPerRecord       = 1 << 12
	maxRecordBytes     int64 = 64 << 20
)

// Read streams the records of a JSON file holding an array of objects, or of
// a JSON Lines file (one object per line), calling fn for each in order. A
// UTF-8 byte order mark is skipped. Every problem is a diag.Diagnostic naming
// the file, line and column (in characters).
func Read(path string, fn func(Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read dataset: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var skip int64
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
		skip = 3
	}
	lim := &limitReader{r: br}
	r := &reader{path: path, skip: skip, dec: json.NewDecoder(lim), lim: lim}
	first, err := firstByte(br)
	if err != nil {
		return r.errAt(0, "empty-dataset", "the dataset is empty", "put a JSON array of objects, or one JSON object per line, in the file")
	}
	if first == '[' {
		return r.array(fn)
	}
	return r.lines(fn)
}

// ReadAll reads every record of path.
func ReadAll(path string) ([]Record, error) {
	var out []Record
	err := Read(path, func(r Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

func firstByte(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		switch c := b[i-1]; c {
		case ' ', '\t', '\r', '\n':
			continue
		default:
			return c, nil
		}
	}
}

// limitReader fails once more than maxRecordBytes (plus the decoder's
// read-ahead) are read without a record being completed, so one huge value
// cannot exhaust memory.
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

var errRecordTooLarge = fmt.Errorf("a record is larger than %d MiB", maxRecordBytes>>20)

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > maxRecordBytes+1<<20 {
		l.over = true
		return 0, errRecordTooLarge
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

type reader struct {
	path string
	skip int64 // bytes skipped before the decoder's stream (BOM)
	dec  *json.Decoder
	lim  *limitReader
	n    int
}

func (r *reader) array(fn func(Record) error) error {
	if _, err := r.dec.Token(); err != nil {
		return r.jsonErr(err)
	}
	for r.dec.More() {
		if err := r.one(fn); err != nil {
			return err
		}
	}
	if _, err := r.dec.Token(); err != nil { // ']'
		return r.jsonErr(err)
	}
	if _, err := r.dec.Token(); err != io.EOF {
		if err != nil {
			return r.jsonErr(err)
		}
		return r.errAt(r.dec.InputOffset()-1, "json-syntax", "unexpected content after the closing ] of the records array", "a dataset file holds one JSON array, or one object per line (JSON Lines)")
	}
	return nil
}

func (r *reader) lines(fn func(Record) error) error {
	for {
		if err := r.one(fn); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func (r *reader) one(fn func(Record) error) error {
	before := r.dec.InputOffset()
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		if err == io.EOF {
			return err
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The decoder's offsets skip bytes its Token calls consumed:
			// scan the value again on its own to place the error exactly.
			if oe, ok := r.rescan(before, err).(*offsetError); ok {
				// The offset counts the byte that broke the syntax.
				return r.syntaxAt(before+oe.off-1, oe.Error())
			}
			// The value itself is sound: a delimiter around it is not.
			return r.syntaxAt(r.dec.InputOffset(), se.Error())
		}
		return r.otherErr(err)
	}
	start := r.dec.InputOffset() - int64(len(raw))
	if start < before {
		start = before
	}
	if int64(len(raw)) > maxRecordBytes {
		return r.errAt(start, "record-too-large", fmt.Sprintf("record %d is %d bytes, more than the %d allowed", r.n, len(raw), maxRecordBytes), "split the record")
	}
	rec, err := r.record(raw, start)
	if err != nil {
		return err
	}
	r.n++
	r.lim.n = 0
	return fn(rec)
}

// record decodes one object's fields, checking their types.
func (r *reader) record(raw json.RawMessage, start int64) (Record, error) {
	rec := Record{Index: r.n, Offset: start + r.skip, Fields: map[string]string{}}
	if raw[0] != '{' {
		return rec, r.errAt(start, "record-type", fmt.Sprintf("record %d is %s, not an object", r.n, kindOf(raw)), `each record must be an object of string fields, like {"instruction": "...", "output": "..."}`)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.Token() // '{'
	for d.More() {
		at := start + d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return rec, r.jsonErr(err)
		}
		key := tok.(string)
		at += int64(bytes.IndexByte(raw[at-start:], '"'))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return rec, r.jsonErr(err)
		}
		if _, dup := rec.Fields[key]; dup {
			return rec, r.errAt(at, "duplicate-field", fmt.Sprintf("record %d has field %q twice", r.n, key), "remove one of them")
		}
		switch v[0] {
		case 'n': // null: absent
			continue
		case '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return rec, r.errAt(at, "json-syntax", err.Error(), "")
			}
			rec.Fields[key] = s
		default:
			return rec, r.errAt(at, "field-type", fmt.Sprintf("record %d: field %q is %s; format templates take string fields only", r.n, key, kindOf(v)),
				"flatten nested or non-string fields into top-level strings before formatting (for example with jq), or remove the field")
		}
		if len(rec.Fields) > maxFieldsPerRecord {
			return rec, r.errAt(at, "record-too-large", fmt.Sprintf("record %d has more than %d fields", r.n, maxFieldsPerRecord), "")
		}
	}
	return rec, nil
}

func kindOf(v json.RawMessage) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// rescan decodes the value at byte offset off of the stream again with a
// fresh decoder, so that a syntax error's offset counts from off.
func (r *reader) rescan(off int64, orig error) error {
	f, err := os.Open(r.path)
	if err != nil {
		return orig
	}
	defer f.Close()
	if _, err := f.Seek(off+r.skip, io.SeekStart); err != nil {
		return orig
	}
	br := bufio.NewReader(f)
	var skipped int64
	for {
		c, err := br.ReadByte()
		if err != nil {
			return orig
		}
		if c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			skipped++
			continue
		}
		br.UnreadByte()
		break
	}
	var raw json.RawMessage
	if err := json.NewDecoder(br).Decode(&raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return &offsetError{se, skipped + se.Offset}
		}
		return err
	}
	return orig
}

// offsetError is a syntax error placed at an offset of our own.
type offsetError struct {
	*json.SyntaxError
	off int64
}

// jsonErr converts an error of the outer decoder's Token or More into a
// positioned diagnostic: the decoder stopped at the offending byte.
func (r *reader) jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return r.syntaxAt(r.dec.InputOffset(), se.Error())
	}
	return r.otherErr(err)
}

func (r *reader) syntaxAt(off int64, msg string) error {
	return r.errAt(off, "json-syntax", "invalid JSON: "+msg, "fix the JSON at this place (a JSON linter such as `jq . FILE` shows the same place)")
}

func (r *reader) otherErr(err error) error {
	if errors.Is(err, errRecordTooLarge) {
		return r.errAt(r.dec.InputOffset(), "record-too-large", fmt.Sprintf("record %d is larger than %d MiB", r.n, maxRecordBytes>>20), "split the record, or check that the file is a dataset")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return r.errAt(-1, "json-syntax", "invalid JSON: the file ends in the middle of a value", "the file looks cut short: complete it or download it again")
	}
	return fmt.Errorf("read dataset %s: %w", r.path, err)
}

// errAt builds a diagnostic at byte offset off of the decoder's stream (-1:
// the end of the file).
func (r *reader) errAt(off int64, code, msg, hint string) error {
	if off >= 0 {
		off += r.skip
	}
	line, col := position(r.path, off)
	d := diag.Errorf(diag.At(r.path, line, col), code, "%s", msg)
	if hint != "" {
		d = d.WithHint("%s", hint)
	}
	return d
}

// position converts a byte offset of file into a 1-based line and column
// (in characters). off -1 means the end of the file. It reads the file again:
// it runs only on the way to an error.
func position(path string, off int64) (line, col int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	line, col = 1, 1
	var pos int64
	for off < 0 || pos < off {
		c, size, err := br.ReadRune()
		if err != nil {
			break
		}
		pos += int64(size)
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// Pos returns the line and column (in characters) of byte offset off in path.
func Pos(path string, off int64) diag.Pos {
	l, c := position(path, off)
	return diag.Pos{Line: l, Col: c}
}
