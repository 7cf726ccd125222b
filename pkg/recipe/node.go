package recipe

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/lora-dev/lora/pkg/diag"
)

var plainNumber = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// nodeKind is the shape of a YAML value.
type nodeKind int

const (
	nNull nodeKind = iota
	nMap
	nSeq
	nString
	nInt
	nFloat
	nBool
)

func (k nodeKind) String() string {
	return [...]string{"null", "a mapping", "a list", "a string", "an integer", "a number", "a boolean"}[k]
}

// node is a YAML value with its place in the source. It is lora's own tree
// (not go-yaml's AST) so that --set can graft values and every checker
// sees one simple shape.
type node struct {
	kind nodeKind
	file string
	pos  diag.Pos // first character of the value
	end  diag.Pos // one past the last character, on pos's line when possible

	keys []*node // nMap: key nodes (nString), in file order
	vals []*node // nMap: values
	seq  []*node // nSeq

	str string  // nString value; for other scalars the text as written
	i   int64   // nInt
	f   float64 // nFloat
	b   bool    // nBool

	m *posMap // nString: source position of every rune of str

	size int // values in the subtree with aliases expanded (bounds alias bombs)
}

func (n *node) rng() diag.Range {
	end := n.end
	if !end.IsValid() {
		end = diag.Pos{Line: n.pos.Line, Col: n.pos.Col + 1}
	}
	return diag.Range{File: n.file, Start: n.pos, End: end}
}

// get returns the value of key in a mapping node.
func (n *node) get(key string) *node {
	if n == nil || n.kind != nMap {
		return nil
	}
	for i, k := range n.keys {
		if k.str == key {
			return n.vals[i]
		}
	}
	return nil
}

// keyNode returns the key node of key in a mapping node.
func (n *node) keyNode(key string) *node {
	if n == nil || n.kind != nMap {
		return nil
	}
	for _, k := range n.keys {
		if k.str == key {
			return k
		}
	}
	return nil
}

// describe names the value's kind for messages ("a string "x"").
func (n *node) describe() string {
	switch n.kind {
	case nString:
		s := n.str
		if utf8.RuneCountInString(s) > 40 {
			s = string([]rune(s)[:37]) + "..."
		}
		return fmt.Sprintf("a string %q", s)
	case nInt, nFloat, nBool:
		return fmt.Sprintf("%s (%s)", n.kind, n.str)
	}
	return n.kind.String()
}

// source is a file's text with a line index for position arithmetic.
type source struct {
	name  string
	text  []byte
	lines []int // byte offset of each line's start
}

func newSource(name string, text []byte) *source {
	s := &source{name: name, text: text, lines: []int{0}}
	for i, c := range text {
		if c == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// offset returns the byte offset of line:col (1-based, col in runes), or -1.
func (s *source) offset(p diag.Pos) int {
	if p.Line < 1 || p.Line > len(s.lines) {
		return -1
	}
	off := s.lines[p.Line-1]
	for c := 1; c < p.Col; c++ {
		if off >= len(s.text) || s.text[off] == '\n' {
			return off
		}
		_, sz := utf8.DecodeRune(s.text[off:])
		off += sz
	}
	return off
}

// posAt returns the line:col of a byte offset.
func (s *source) posAt(off int) diag.Pos {
	lo, hi := 0, len(s.lines)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if s.lines[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	col := utf8.RuneCount(s.text[s.lines[lo]:min(off, len(s.text))]) + 1
	return diag.Pos{Line: lo + 1, Col: col}
}

// parseYAML parses src into a node tree. Syntax errors, duplicate keys and
// unsupported constructs become diagnostics; the tree is nil when the file
// does not parse.
func parseYAML(file string, src []byte) (*node, diag.List) {
	var ds diag.List
	// a UTF-8 byte order mark (some Windows editors write one) is not
	// content, and editors do not count it as a column
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	if strings.TrimSpace(string(src)) == "" {
		ds.Add(diag.Errorf(diag.Range{File: file}, "empty", "the recipe is empty").
			WithHint("start with `version: 1`; see docs/recipe.md"))
		return nil, ds
	}
	f, err := parser.ParseBytes(src, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		d := syntaxDiag(file, err)
		if strings.Contains(d.Message, "must be specified") {
			// go-yaml notices an unclosed { or [ where the next key starts;
			// point at the bracket that was never closed
			if p, ok := unclosedBracket(src, d.Range.Start); ok {
				open := src[newSource(file, src).offset(p)]
				d.Message = fmt.Sprintf("YAML syntax: this %c is never closed", open)
				d.Hint = fmt.Sprintf("add the closing %c after the last entry", map[byte]byte{'{': '}', '[': ']'}[open])
				d.Range = diag.Range{File: file, Start: p, End: diag.Pos{Line: p.Line, Col: p.Col + 1}}
			}
		}
		if strings.Contains(d.Message, "not allowed in this context") || strings.Contains(d.Message, "unexpected key name") {
			if q, ok := unclosedQuote(src, d.Range.Start.Line); ok {
				d.Message = "YAML syntax: this quoted string is not closed on its line"
				d.Hint = "add the closing \" (a quoted value may span lines only on purpose)"
				d.Range = diag.Range{File: file, Start: q, End: diag.Pos{Line: q.Line, Col: q.Col + 1}}
			} else if strings.Contains(d.Message, "not allowed in this context") {
				d = blameIndentation(file, src, d)
			} else if l := d.Range.Start.Line; l >= 1 {
				// "unexpected key name": a key written without its colon
				text := strings.TrimSpace(strings.Split(string(src), "\n")[l-1])
				if h := strings.Index(text, " #"); h >= 0 {
					text = strings.TrimSpace(text[:h])
				}
				if key, rest, _ := strings.Cut(text, " "); key != "" && !strings.ContainsAny(key, ":\"'") {
					d.Message = "YAML syntax: this line has no colon, so it is not a key"
					d.Hint = fmt.Sprintf("write `%s:`", key)
					if rest != "" {
						d.Hint = fmt.Sprintf("write `%s: %s`", key, strings.TrimSpace(rest))
					}
				}
			}
		}
		ds.Add(d)
		return nil, ds
	}
	if len(f.Docs) != 1 {
		r := diag.Range{File: file, Start: diag.Pos{Line: 1, Col: 1}}
		if len(f.Docs) > 1 && f.Docs[1].Start != nil {
			r = tokRange(file, f.Docs[1].Start)
		}
		ds.Add(diag.Errorf(r, "yaml-syntax", "a recipe is one YAML document, found %d", len(f.Docs)).
			WithHint("remove the extra `---` document separators"))
		return nil, ds
	}
	c := &converter{src: newSource(file, src), anchors: map[string]*node{}}
	n := c.conv(f.Docs[0].Body)
	ds = append(ds, c.ds...)
	return n, ds
}

// syntaxDiag turns a go-yaml error into a positioned diagnostic.
func syntaxDiag(file string, err error) diag.Diagnostic {
	type tokErr interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if te, ok := err.(tokErr); ok && te.GetToken() != nil && te.GetToken().Position != nil {
		msg := strings.ReplaceAll(te.GetMessage(), "\t", "\\t")
		return diag.Errorf(tokRange(file, te.GetToken()), "yaml-syntax", "YAML syntax: %s", msg).
			WithHint("%s", syntaxHint(msg))
	}
	return diag.Errorf(diag.Range{File: file}, "yaml-syntax", "YAML syntax: %v", err).
		WithHint("check indentation (spaces only, no tabs) and that quotes and brackets are closed")
}

// blameIndentation moves an indentation error to the line most likely at
// fault. go-yaml reports where the structure broke, which is often the line
// before or after the one a person mis-indented. Between two candidate
// lines it blames the one with a tab, or the one not indented by the file's
// step (the usual indentation of a block under its key, often 2) relative
// to the key it belongs to.
func blameIndentation(file string, src []byte, d diag.Diagnostic) diag.Diagnostic {
	lines := strings.Split(string(src), "\n")
	content := func(i int) bool {
		if i < 0 || i >= len(lines) {
			return false
		}
		t := strings.TrimSpace(lines[i])
		return t != "" && !strings.HasPrefix(t, "#")
	}
	lead := func(i int) string { return lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))] }
	indent := func(i int) int { return len(lead(i)) }
	hasTab := func(i int) bool { return strings.Contains(lead(i), "\t") }
	prev := func(i int) int {
		for i--; i >= 0 && !content(i); i-- {
		}
		return i
	}
	next := func(i int) int {
		for i++; i < len(lines) && !content(i); i++ {
		}
		if i >= len(lines) {
			return -1
		}
		return i
	}
	opensBlock := func(i int) bool {
		t := strings.TrimSpace(lines[i])
		if h := strings.Index(t, " #"); h >= 0 {
			t = strings.TrimSpace(t[:h])
		}
		return strings.HasSuffix(t, ":")
	}
	// opener: the nearest earlier line indented less than i that opens a block
	opener := func(i int) int {
		for k := prev(i); k >= 0; k = prev(k) {
			if indent(k) < indent(i) && opensBlock(k) {
				return k
			}
		}
		return -1
	}
	// the step: the most common indentation of a block's first line
	// relative to its key (one mis-indented line cannot change it)
	counts := map[int]int{}
	for i := range lines {
		if content(i) && opensBlock(i) {
			if c := next(i); c >= 0 && indent(c) > indent(i) {
				counts[indent(c)-indent(i)]++
			}
		}
	}
	step := 0
	for st, n := range counts {
		if step == 0 || n > counts[step] || n == counts[step] && st < step {
			step = st
		}
	}
	offStep := func(i int) bool {
		if hasTab(i) {
			return true
		}
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "- ") {
			return false // list items may sit at their key's indentation
		}
		o := opener(i)
		if o < 0 {
			return indent(i) != 0
		}
		return step > 0 && indent(i)-indent(o) != step
	}
	at := func(i int) diag.Diagnostic {
		if hasTab(i) {
			d.Message = "YAML syntax: this line is indented with a tab"
			d.Hint = "indent with spaces; YAML does not allow tabs"
		} else {
			d.Message = fmt.Sprintf("YAML syntax: this line's indentation (%d spaces) does not fit the lines around it", indent(i))
			d.Hint = "align it with its sibling keys, or indent it one step under the key it belongs to"
			if o := opener(i); o >= 0 && step > 0 {
				key := strings.TrimSpace(lines[o])
				if h := strings.Index(key, " #"); h >= 0 {
					key = strings.TrimSpace(key[:h])
				}
				d.Hint = fmt.Sprintf("indent it %d spaces, one step under `%s` (line %d), like its sibling keys", indent(o)+step, key, o+1)
			}
		}
		col := utf8.RuneCountInString(lead(i)) + 1
		d.Range = diag.Range{File: file, Start: diag.Pos{Line: i + 1, Col: col}, End: diag.Pos{Line: i + 1, Col: col + utf8.RuneCountInString(strings.TrimSpace(lines[i]))}}
		return d
	}
	// pick chooses between the earlier line a and the later line b
	pick := func(a, b int) diag.Diagnostic {
		switch {
		case offStep(a) && !offStep(b):
			return at(a)
		case offStep(b) && !offStep(a):
			return at(b)
		}
		// a line at its opener's own indentation, right under it, leaves
		// the block empty: it is the intruder
		if pa := prev(a); pa >= 0 && opensBlock(pa) && indent(a) <= indent(pa) {
			return at(a)
		}
		return at(b)
	}
	// a bare word on a line of its own where a key is expected: the colon
	// is missing
	bare := regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_-]*(\s+[^:#\s][^:#]*)?\s*(#.*)?$`)
	missingColon := func(i int) diag.Diagnostic {
		d = at(i)
		d.Message = "YAML syntax: this line has no colon, so it is not a key"
		key, rest, _ := strings.Cut(strings.TrimSpace(lines[i]), " ")
		d.Hint = fmt.Sprintf("write `%s: %s`", key, strings.TrimSpace(rest))
		if rest == "" {
			d.Hint = fmt.Sprintf("write `%s:`", key)
		}
		return d
	}
	l := d.Range.Start.Line - 1
	if !content(l) {
		return d
	}
	if p := prev(l); p >= 0 && bare.MatchString(lines[p]) && !strings.Contains(d.Message, "mapping value") {
		if pp := prev(p); pp < 0 || opensBlock(pp) || indent(pp) >= indent(p) {
			return missingColon(p)
		}
	}
	if strings.Contains(d.Message, "mapping value is not allowed") {
		// a colon on the error's own line is the problem: a value with ": "
		// in it, or a missing line break
		rs := []rune(lines[l])
		if rest := string(rs[min(d.Range.Start.Col, len(rs)):]); strings.Contains(rest+" ", ": ") {
			return d
		}
		c := next(l)
		if c < 0 || indent(c) <= indent(l) {
			return d
		}
		return pick(l, c)
	}
	// "value is not allowed": line l does not fit the block it is in
	p := prev(l)
	if p < 0 {
		return d
	}
	if hasTab(p) {
		return at(p)
	}
	if hasTab(l) {
		return at(l)
	}
	// a mis-indented key opens the block l is in
	if o := opener(l); o >= 0 && offStep(o) {
		return at(o)
	}
	// the block's first line set its indentation; l disagrees with it
	if o := opener(l); o >= 0 {
		if f := next(o); f >= 0 && f != l && lead(f) != lead(l) && indent(f) > indent(o) {
			return pick(f, l)
		}
	}
	if indent(p) == indent(l) {
		return d
	}
	return pick(p, l)
}

// unclosedQuote finds, on the lines before line (1-based), the nearest
// line whose double-quoted value does not close on it; a YAML error further
// down is then most likely that quote swallowing the lines after it.
func unclosedQuote(src []byte, line int) (diag.Pos, bool) {
	lines := strings.Split(string(src), "\n")
	for i := min(line, len(lines)) - 1; i >= 0 && i >= line-80; i-- {
		open, col := false, 0
		rs := []rune(lines[i])
		for j := 0; j < len(rs); j++ {
			c := rs[j]
			switch {
			case open && c == '\\':
				j++
			case c == '"':
				if !open {
					// a quote opens a value only after ": ", "- ", "[", "{" or ","
					k := j - 1
					for k >= 0 && rs[k] == ' ' {
						k--
					}
					if k >= 0 && !strings.ContainsRune(":-[{,", rs[k]) {
						continue
					}
					col = j + 1
				}
				open = !open
			case !open && c == '#' && (j == 0 || rs[j-1] == ' '):
				j = len(rs)
			}
		}
		if open {
			return diag.Pos{Line: i + 1, Col: col}, true
		}
	}
	return diag.Pos{}, false
}

// unclosedBracket finds the innermost flow bracket still open at position
// at (skipping quoted text and comments).
func unclosedBracket(src []byte, at diag.Pos) (diag.Pos, bool) {
	s := newSource("", src)
	end := s.offset(at)
	if end < 0 {
		end = len(src)
	}
	var stack []int
	var quote byte
	for i := 0; i < end; i++ {
		c := src[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '"' || c == '\'':
			if i == 0 || strings.ContainsRune(" \t[{,:", rune(src[i-1])) {
				quote = c
			}
		case c == '#' && (i == 0 || src[i-1] == ' ' || src[i-1] == '\n'):
			for i < end && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '[':
			stack = append(stack, i)
		case (c == '}' || c == ']') && len(stack) > 0:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) == 0 {
		return diag.Pos{}, false
	}
	return s.posAt(stack[len(stack)-1]), true
}

func syntaxHint(msg string) string {
	switch {
	case strings.Contains(msg, "tab") || strings.Contains(msg, `\t`) || strings.Contains(msg, "\t"):
		return "indent with spaces; YAML does not allow tabs"
	case strings.Contains(msg, "unexpected key name"):
		return "is the colon after the key on this line missing? write `key:` or `key: value`"
	case strings.Contains(msg, "non-map value"):
		return "a key needs a colon and a space after it: `key: value`"
	case strings.Contains(msg, "mapping value is not allowed"):
		return "quote a value that contains \": \" (format: \"a: b\"), or fix the indentation of this line"
	case strings.Contains(msg, "value is not allowed in this context"):
		return "check this line's indentation against the lines above it, and that the value before it is complete"
	case strings.Contains(msg, "']'") || strings.Contains(msg, "'}'") || strings.Contains(msg, "never closed"):
		return "close the flow collection with ] or }"
	case strings.Contains(msg, "quote"):
		return "close the quoted string"
	}
	return "check indentation (spaces only, no tabs) and that quotes and brackets are closed"
}

func tokRange(file string, tk *token.Token) diag.Range {
	p := tk.Position
	col := max(p.Column, 1)
	n := max(utf8.RuneCountInString(tk.Value), 1)
	if strings.Contains(tk.Value, "\n") {
		n = 1
	}
	return diag.Range{File: file, Start: diag.Pos{Line: p.Line, Col: col}, End: diag.Pos{Line: p.Line, Col: col + n}}
}

type converter struct {
	src      *source
	anchors  map[string]*node
	ds       diag.List
	depth    int
	tooLarge bool
}

const (
	maxDepth = 64
	maxNodes = 100_000
)

func (c *converter) at(tk *token.Token) diag.Pos {
	if tk == nil || tk.Position == nil {
		return diag.Pos{}
	}
	return diag.Pos{Line: tk.Position.Line, Col: max(tk.Position.Column, 1)}
}

func (c *converter) conv(an ast.Node) *node {
	if an == nil {
		return &node{kind: nNull, file: c.src.name}
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		c.ds.Add(diag.Errorf(diag.Range{File: c.src.name, Start: c.at(an.GetToken())}, "too-deep", "the YAML nests deeper than %d levels", maxDepth))
		return &node{kind: nNull, file: c.src.name, pos: c.at(an.GetToken())}
	}
	n := &node{file: c.src.name, pos: c.at(an.GetToken())}
	switch v := an.(type) {
	case *ast.NullNode:
		n.kind = nNull
		n.str = "null"
		if v.Token != nil && v.Token.Value == "" {
			n.str = ""
		}
	case *ast.BoolNode:
		n.kind, n.b, n.str = nBool, v.Value, v.Token.Value
	case *ast.IntegerNode:
		n.kind, n.str = nInt, v.Token.Value
		switch x := v.Value.(type) {
		case int64:
			n.i = x
		case uint64:
			if x > math.MaxInt64 {
				n.kind, n.f = nFloat, float64(x)
			} else {
				n.i = int64(x)
			}
		}
	case *ast.FloatNode:
		n.kind, n.f, n.str = nFloat, v.Value, v.Token.Value
	case *ast.InfinityNode:
		n.kind, n.f, n.str = nFloat, v.Value, v.Token.Value
	case *ast.NanNode:
		n.kind, n.f, n.str = nFloat, math.NaN(), v.Token.Value
	case *ast.StringNode:
		n.kind, n.str = nString, v.Value
		n.m = c.scalarMap(v.Token, v.Value)
		if v.Token.Type == token.StringType && n.m != nil && len(n.m.pos) > 0 {
			n.pos = n.m.pos[0]
		}
		// go-yaml reads 3e-4 (no dot) as a string; YAML 1.2's core schema and
		// every user mean a number
		if v.Token.Type == token.StringType && plainNumber.MatchString(v.Value) {
			if f, err := strconv.ParseFloat(v.Value, 64); err == nil {
				n.kind, n.f = nFloat, f
			}
		}
	case *ast.LiteralNode:
		n.kind = nString
		n.str = v.Value.Value
		n.pos = c.at(v.Start)
		n.m = c.blockMap(v.Start, v.Value.Value)
	case *ast.MappingNode:
		c.mapping(n, v.Values, v.IsFlowStyle)
	case *ast.MappingValueNode:
		c.mapping(n, []*ast.MappingValueNode{v}, false)
	case *ast.SequenceNode:
		n.kind = nSeq
		for _, item := range v.Values {
			n.seq = append(n.seq, c.conv(item))
		}
	case *ast.AnchorNode:
		inner := c.conv(v.Value)
		c.anchors[v.Name.GetToken().Value] = inner
		return inner
	case *ast.AliasNode:
		name := v.Value.GetToken().Value
		target, ok := c.anchors[name]
		if !ok {
			c.ds.Add(diag.Errorf(diag.Range{File: c.src.name, Start: n.pos}, "yaml-syntax", "unknown alias *%s", name).
				WithHint("define the anchor &%s before using it", name))
			n.kind = nNull
			return n
		}
		return target
	case *ast.TagNode:
		inner := c.conv(v.Value)
		switch v.Start.Value {
		case "!!str":
			if inner.kind != nMap && inner.kind != nSeq && inner.kind != nString {
				inner.kind = nString
			}
		case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		default:
			c.ds.Add(diag.Errorf(diag.Range{File: c.src.name, Start: c.at(v.Start)}, "yaml-syntax", "unsupported YAML tag %s", v.Start.Value).
				WithHint("remove the tag"))
		}
		return inner
	case *ast.CommentNode, *ast.CommentGroupNode:
		n.kind = nNull
	default:
		c.ds.Add(diag.Errorf(diag.Range{File: c.src.name, Start: n.pos}, "yaml-syntax", "unsupported YAML construct (%s)", an.Type()))
		n.kind = nNull
	}
	if n.kind != nMap && n.kind != nSeq && !n.end.IsValid() {
		n.end = c.scalarEnd(n, an)
	}
	n.size = 1
	for i := range n.keys {
		n.size += 1 + n.vals[i].size
	}
	for _, v := range n.seq {
		n.size += v.size
	}
	if n.size > maxNodes {
		if !c.tooLarge {
			c.tooLarge = true
			c.ds.Add(diag.Errorf(diag.Range{File: c.src.name, Start: n.pos}, "too-large", "the YAML expands to more than %d values (through aliases)", maxNodes).
				WithHint("a recipe is small; remove the repeated aliases"))
		}
		return &node{kind: nNull, file: n.file, pos: n.pos, end: n.end, size: 1}
	}
	return n
}

func (c *converter) mapping(n *node, values []*ast.MappingValueNode, flow bool) {
	n.kind = nMap
	seen := map[string]*node{}
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			c.merge(n, seen, mv)
			continue
		}
		k := c.conv(mv.Key)
		if k.kind == nMap || k.kind == nSeq {
			c.ds.Add(diag.Errorf(k.rng(), "yaml-syntax", "a mapping key must be a plain string"))
			continue
		}
		if k.kind != nString {
			k.kind = nString // keys are names: `1: x` is the key "1"
		}
		if first, dup := seen[k.str]; dup {
			c.ds.Add(diag.Errorf(k.rng(), "duplicate-key", "duplicate key %q (first defined at line %d)", k.str, first.pos.Line).
				WithHint("remove one of the two; YAML keys must be unique within a mapping"))
			continue
		}
		seen[k.str] = k
		n.keys = append(n.keys, k)
		n.vals = append(n.vals, c.conv(mv.Value))
	}
	if len(n.keys) > 0 && (!flow || !n.pos.IsValid()) {
		n.pos = n.keys[0].pos // a block mapping starts at its first key
	}
}

// merge applies a YAML merge key (<<: *anchor): keys not yet present are copied.
func (c *converter) merge(n *node, seen map[string]*node, mv *ast.MappingValueNode) {
	src := c.conv(mv.Value)
	var maps []*node
	switch src.kind {
	case nMap:
		maps = []*node{src}
	case nSeq:
		maps = src.seq
	}
	for _, m := range maps {
		if m.kind != nMap {
			c.ds.Add(diag.Errorf(src.rng(), "yaml-syntax", "a merge key (<<) needs a mapping or a list of mappings"))
			return
		}
		for i, k := range m.keys {
			if _, ok := seen[k.str]; ok {
				continue
			}
			seen[k.str] = k
			n.keys = append(n.keys, k)
			n.vals = append(n.vals, m.vals[i])
		}
	}
}

// scalarEnd computes where a scalar's text ends on its first line.
func (c *converter) scalarEnd(n *node, an ast.Node) diag.Pos {
	if n.m != nil && len(n.m.pos) > 0 {
		last := n.m.pos[len(n.m.pos)-1]
		if last.Line == n.pos.Line {
			end := last.Col + 1
			if tk := an.GetToken(); tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
				end++ // closing quote
			}
			return diag.Pos{Line: n.pos.Line, Col: end}
		}
	}
	tk := an.GetToken()
	if tk == nil {
		return diag.Pos{}
	}
	w := utf8.RuneCountInString(tk.Value)
	if n.kind == nString && tk.Type != token.StringType {
		w += 2
	}
	if w == 0 || strings.Contains(tk.Value, "\n") {
		w = 1
	}
	return diag.Pos{Line: n.pos.Line, Col: n.pos.Col + w}
}

// posMap maps each rune of a decoded scalar to its position in the file, so
// that a position inside an expression becomes a file line:col.
type posMap struct {
	pos []diag.Pos
}

// at returns the file position of rune i of the value (clamped).
func (m *posMap) at(i int) diag.Pos {
	if m == nil || len(m.pos) == 0 {
		return diag.Pos{}
	}
	if i < 0 {
		i = 0
	}
	if i >= len(m.pos) {
		p := m.pos[len(m.pos)-1]
		return diag.Pos{Line: p.Line, Col: p.Col + 1 + (i - len(m.pos))}
	}
	return m.pos[i]
}

// scalarMap aligns a flow scalar's value with the source text from its token
// position: runes that match are mapped, quoting, escapes and folded line
// breaks are skipped.
func (c *converter) scalarMap(tk *token.Token, val string) *posMap {
	if tk == nil || tk.Position == nil {
		return nil
	}
	off := c.src.offset(c.at(tk))
	if off < 0 {
		return nil
	}
	quote := byte(0)
	switch tk.Type {
	case token.DoubleQuoteType:
		quote = '"'
	case token.SingleQuoteType:
		quote = '\''
	}
	if quote != 0 && off < len(c.src.text) && c.src.text[off] == quote {
		off++
	}
	if quote == 0 {
		off = c.fixStart(off, val)
	}
	return c.align(off, val, quote)
}

// fixStart corrects a plain scalar's start offset: go-yaml's column is
// sometimes one or two off (trailing spaces, comments after the value).
// It looks nearby on the same line for the value's first word.
func (c *converter) fixStart(off int, val string) int {
	word := val
	if i := strings.IndexAny(word, " \t\n"); i >= 0 {
		word = word[:i]
	}
	if word == "" {
		return off
	}
	text := c.src.text
	for _, d := range []int{0, -1, 1, -2, 2, -3, 3, -4, 4} {
		cand := off + d
		if cand < 0 || cand+len(word) > len(text) {
			continue
		}
		if string(text[cand:cand+len(word)]) == word && (cand == 0 || strings.IndexByte(" \t:-[{,\n", text[cand-1]) >= 0) {
			return cand
		}
	}
	return off
}

// blockMap maps a block scalar (| or >): its text starts on the line after the indicator.
func (c *converter) blockMap(start *token.Token, val string) *posMap {
	off := c.src.offset(c.at(start))
	if off < 0 {
		return nil
	}
	nl := strings.IndexByte(string(c.src.text[off:]), '\n')
	if nl < 0 {
		return nil
	}
	return c.align(off+nl+1, val, 0)
}

func (c *converter) align(off int, val string, quote byte) *posMap {
	m := &posMap{pos: make([]diag.Pos, 0, len(val))}
	text := c.src.text
	for _, r := range val {
		// bounded search: never look more than 256 bytes ahead for the next rune
		limit := min(len(text), off+256)
		found := -1
		for j := off; j < limit; {
			sr, sz := utf8.DecodeRune(text[j:])
			if quote == '"' && sr == '\\' {
				found = j
				sz = escapeLen(text[j:])
				off = j + sz
				break
			}
			if quote == '\'' && sr == '\'' && j+1 < len(text) && text[j+1] == '\'' && r == '\'' {
				found = j
				off = j + 2
				break
			}
			if sr == r {
				found = j
				off = j + sz
				break
			}
			if sr != ' ' && sr != '\t' && sr != '\n' && sr != '\r' {
				break // only folding and indentation are skipped
			}
			j += sz
		}
		if found < 0 {
			// could not align (unusual folding): extrapolate from the last rune
			if len(m.pos) == 0 {
				m.pos = append(m.pos, c.src.posAt(off))
			} else {
				p := m.pos[len(m.pos)-1]
				m.pos = append(m.pos, diag.Pos{Line: p.Line, Col: p.Col + 1})
			}
			continue
		}
		m.pos = append(m.pos, c.src.posAt(found))
	}
	return m
}

// escapeLen is the byte length of a double-quoted escape sequence at b[0]=='\\'.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return len(b)
	}
	switch b[1] {
	case 'x':
		return min(len(b), 4)
	case 'u':
		return min(len(b), 6)
	case 'U':
		return min(len(b), 10)
	case '\n':
		return 2
	}
	_, sz := utf8.DecodeRune(b[1:])
	return 1 + sz
}
