package dataset

import (
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

// Format is a set of prompt templates, one per record field set, as in
// text-generation-webui's format files: a JSON object whose keys are
// comma-separated field names and whose values are templates with %field%
// placeholders.
type Format struct {
	Name string // built-in name, or the file's path
	// Response is the field whose text (and everything after its
	// placeholder) is trained when training on the response only.
	Response  string
	Templates []*Template
	byKey     map[string]*Template
}

// Template is one entry of a format.
type Template struct {
	Key    string   // the key as written ("instruction,input,output")
	Fields []string // its field names, sorted
	Text   string
	Pos    diag.Pos // where the key is in the format file (zero for built-ins)
}

// DefaultResponse is the response field of format files.
const DefaultResponse = "output"

const maxFormatBytes = 1 << 20

// LoadFormat returns the built-in format called name or, when name is not
// one, the format file at that path.
func LoadFormat(name string) (*Format, error) {
	if f, ok := Builtin(name); ok {
		return f, nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("format %q is neither a built-in (%s) nor a readable file: %w", name, strings.Join(BuiltinNames(), ", "), err)
	}
	if st.Size() > maxFormatBytes {
		return nil, fmt.Errorf("format file %s is %d bytes, more than the %d allowed", name, st.Size(), maxFormatBytes)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read format file: %w", err)
	}
	return ParseFormat(name, data)
}

// ParseFormat parses a format file's contents; file names it in
// diagnostics. Every problem is reported (diag.List.Err).
func ParseFormat(file string, data []byte) (*Format, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	f := &Format{Name: file, Response: DefaultResponse, byKey: map[string]*Template{}}
	var errs diag.List
	at := func(off int64) diag.Range {
		p := posIn(data, off)
		return diag.At(file, p.Line, p.Col)
	}
	fail := func(off int64, err error) (*Format, error) {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The streaming decoder's offsets skip what Token consumed:
			// scan the whole file again to place the error exactly.
			var v any
			if e := json.Unmarshal(data, &v); errors.As(e, &se) {
				err, off = se, max(se.Offset-1, 0)
			}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			off = int64(len(data))
		}
		errs.Add(diag.Errorf(at(off), "format-syntax", "invalid format file: %v", err).
			WithHint(`a format file is one JSON object: {"instruction,output": "...%%instruction%%...%%output%%"}`))
		return nil, errs.Err()
	}
	d := json.NewDecoder(bytes.NewReader(data))
	tok, err := d.Token()
	if err != nil {
		return fail(0, err)
	}
	if tok != json.Delim('{') {
		return fail(0, fmt.Errorf("the top level is not an object"))
	}
	for d.More() {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return fail(off, err)
		}
		key := tok.(string)
		off += int64(bytes.IndexByte(data[off:], '"'))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return fail(off, err)
		}
		var text string
		if v[0] != '"' || json.Unmarshal(v, &text) != nil {
			errs.Add(diag.Errorf(at(off), "format-type", "template %q is %s, not a string", key, kindOf(v)).
				WithHint("each value is a template text with %%field%% placeholders"))
			continue
		}
		t := &Template{Key: key, Text: text, Pos: posIn(data, off)}
		bad := false
		for _, name := range strings.Split(key, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				errs.Add(diag.Errorf(at(off), "format-key", "key %q has an empty field name", key).
					WithHint(`keys are field names joined by commas, like "instruction,input,output"`))
				bad = true
				break
			}
			if slices.Contains(t.Fields, name) {
				errs.Add(diag.Errorf(at(off), "format-key", "key %q names field %q twice", key, name))
				bad = true
				break
			}
			t.Fields = append(t.Fields, name)
		}
		if bad {
			continue
		}
		slices.Sort(t.Fields)
		set := strings.Join(t.Fields, ",")
		if prev, dup := f.byKey[set]; dup {
			errs.Add(diag.Errorf(at(off), "format-duplicate", "key %q has the same field set as key %q at line %d", key, prev.Key, prev.Pos.Line).
				WithHint("a record can use only one template per field set: remove one"))
			continue
		}
		f.byKey[set] = t
		f.Templates = append(f.Templates, t)
	}
	if _, err := d.Token(); err != nil {
		return fail(d.InputOffset(), err)
	}
	if _, err := d.Token(); err != io.EOF {
		errs.Add(diag.Errorf(at(d.InputOffset()), "format-syntax", "unexpected content after the format object"))
	}
	if len(f.Templates) == 0 && !errs.HasErrors() {
		errs.Add(diag.Errorf(at(0), "format-empty", "the format has no templates").
			WithHint(`add one, like {"instruction,output": "User: %%instruction%%\nAssistant: %%output%%"}`))
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// posIn converts a byte offset of data into a 1-based line and column.
func posIn(data []byte, off int64) diag.Pos {
	off = min(max(off, 0), int64(len(data)))
	pre := data[:off]
	line := bytes.Count(pre, []byte{'\n'}) + 1
	col := len([]rune(string(pre[bytes.LastIndexByte(pre, '\n')+1:]))) + 1
	return diag.Pos{Line: line, Col: col}
}

// Match returns the template whose field set equals the record's set of
// non-empty fields, or nil.
func (f *Format) Match(r Record) *Template { return f.byKey[strings.Join(r.Set(), ",")] }

// Keys returns the format's field sets as written, in file order.
func (f *Format) Keys() []string {
	k := make([]string, len(f.Templates))
	for i, t := range f.Templates {
		k[i] = t.Key
	}
	return k
}

// Uses reports whether every template has a %field% placeholder for name.
func (f *Format) Uses(name string) bool {
	for _, t := range f.Templates {
		if !strings.Contains(t.Text, "%"+name+"%") {
			return false
		}
	}
	return len(f.Templates) > 0
}

// Rendered is a template filled in with a record's fields.
type Rendered struct {
	Text string
	// ResponseAt is the byte offset in Text where the response field's value
	// starts (-1: the template has no placeholder for it).
	ResponseAt int
	// Literal lists the [start, end) byte ranges of Text that came from the
	// template itself rather than from field values.
	Literal [][2]int
}

// Render fills in t with fields in one pass from left to right: each
// %name% naming one of the record's string fields (empty ones included, as
// the seed does) is replaced by its value, and the value is never scanned
// again, so a value containing %other% stays literal. Any other % is text.
func (t *Template) Render(fields map[string]string, response string) Rendered {
	var b strings.Builder
	r := Rendered{ResponseAt: -1}
	tpl := t.Text
	lit := 0
	for i := 0; i < len(tpl); {
		if tpl[i] == '%' {
			if j := strings.IndexByte(tpl[i+1:], '%'); j >= 0 {
				name := tpl[i+1 : i+1+j]
				if v, ok := fields[name]; ok {
					if b.Len() > lit {
						r.Literal = append(r.Literal, [2]int{lit, b.Len()})
					}
					if name == response && r.ResponseAt < 0 {
						r.ResponseAt = b.Len()
					}
					b.WriteString(v)
					lit = b.Len()
					i += j + 2
					continue
				}
			}
		}
		b.WriteByte(tpl[i])
		i++
	}
	if b.Len() > lit {
		r.Literal = append(r.Literal, [2]int{lit, b.Len()})
	}
	r.Text = b.String()
	return r
}
