package diag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSortDedupeCount(t *testing.T) {
	l := List{
		Errorf(At("b.yaml", 1, 1), "x", "b"),
		Warningf(At("a.yaml", 3, 2), "w", "warn"),
		Errorf(At("a.yaml", 3, 2), "x", "first"),
		Errorf(At("a.yaml", 3, 2), "x", "same place and code"),
		Errorf(At("a.yaml", 1, 5), "y", "early"),
	}
	l = l.Dedupe()
	var got []string
	for _, d := range l {
		got = append(got, d.Range.String()+" "+d.Message)
	}
	want := []string{"a.yaml:1:5 early", "a.yaml:3:2 first", "a.yaml:3:2 warn", "b.yaml:1:1 b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if l.Count(Error) != 3 || l.Count(Warning) != 1 || !l.HasErrors() {
		t.Errorf("counts wrong: %d errors %d warnings", l.Count(Error), l.Count(Warning))
	}
}

func TestErr(t *testing.T) {
	if (List{Warningf(At("a", 1, 1), "w", "only a warning")}).Err() != nil {
		t.Error("warnings alone must not be an error")
	}
	l := List{Errorf(At("a.yaml", 2, 3), "unknown-key", "unknown key %q", "x").WithHint("did you mean y?")}
	err := l.Err()
	if !errors.Is(err, ErrInvalid) {
		t.Error("Err does not wrap ErrInvalid")
	}
	var d Diagnostic
	if !errors.As(err, &d) || d.Code != "unknown-key" {
		t.Errorf("errors.As did not find the diagnostic: %v", err)
	}
	if got, want := err.Error(), `a.yaml:2:3: error: unknown key "x" (hint: did you mean y?)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestText(t *testing.T) {
	src := "version: 1\n\tname: x\nmodel:\n  sha256: ABC\n"
	l := List{
		{Severity: Error, Code: "bad", Message: "bad sha", Hint: "lowercase", Range: Range{File: "r.yaml", Start: Pos{4, 11}, End: Pos{4, 14}}},
		{Severity: Warning, Code: "tab", Message: "tab", Range: Range{File: "r.yaml", Start: Pos{2, 2}, End: Pos{2, 6}}},
		{Severity: Error, Code: "read", Message: "no file", Range: Range{File: "gone.yaml"}},
	}
	var buf bytes.Buffer
	if err := (Text{Sources: map[string][]byte{"r.yaml": []byte(src)}}).Write(&buf, l); err != nil {
		t.Fatal(err)
	}
	want := "r.yaml:4:11: error: bad sha\n" +
		" 4 |   sha256: ABC\n" +
		"   |           ^^^\n" +
		"hint: lowercase\n" +
		"r.yaml:2:2: warning: tab\n" +
		" 2 | \tname: x\n" +
		"   | \t^^^^\n" +
		"gone.yaml: error: no file\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	(Text{Color: true, Sources: map[string][]byte{"r.yaml": []byte(src)}}).Write(&buf, l[:1])
	if !strings.Contains(buf.String(), "\x1b[1;31merror") {
		t.Errorf("no color: %q", buf.String())
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != JSONVersion || doc.Diagnostics == nil || len(doc.Diagnostics) != 0 {
		t.Errorf("empty document wrong: %s", buf.String())
	}
	l := List{Errorf(Range{File: "a", Start: Pos{1, 2}, End: Pos{1, 4}}, "c", "m").WithHint("h"), Warningf(At("a", 2, 1), "w", "m2")}
	buf.Reset()
	WriteJSON(&buf, l)
	doc = Document{}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Errors != 1 || doc.Warnings != 1 || doc.Diagnostics[0] != l[0] || doc.Diagnostics[1] != l[1] {
		t.Errorf("round trip lost data: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"severity": "error"`) {
		t.Errorf("severity not a name: %s", buf.String())
	}
}

func TestFromError(t *testing.T) {
	l := List{Errorf(At("a", 1, 1), "x", "one"), Warningf(At("a", 2, 1), "w", "warn"), Errorf(At("a", 3, 1), "y", "two")}
	got := FromError(fmt.Errorf("load: %w", l.Err()))
	if len(got) != 2 || got[0].Code != "x" || got[1].Code != "y" {
		t.Errorf("FromError = %v", got)
	}
	if FromError(errors.New("plain")) != nil || FromError(nil) != nil {
		t.Error("FromError found diagnostics in a plain error")
	}
}
