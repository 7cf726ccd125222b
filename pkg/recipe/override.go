package recipe

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lora-dev/lora/pkg/diag"
)

// applyOverride grafts one --set path=value (the line-th override) into the
// tree. The path is checked against the recipe's keys as it is walked, so a
// misspelt path is reported at the override, not as an unknown key later.
func applyOverride(root *node, line int, text string) (Override, *diag.Diagnostic) {
	whole := diag.Range{File: SetFile, Start: diag.Pos{Line: line, Col: 1}, End: diag.Pos{Line: line, Col: utf8.RuneCountInString(text) + 1}}
	path, value, ok := strings.Cut(text, "=")
	if !ok || path == "" {
		d := diag.Errorf(whole, "bad-override", "override %q is not key.path=value", text).
			WithHint("write --set stages.train.train.lora.rank=16")
		return Override{}, &d
	}
	elems := strings.Split(path, ".")
	vn, ds := parseYAML(SetFile, []byte(value))
	if ds.HasErrors() {
		d := ds[0]
		d.Range = whole
		d.Message = fmt.Sprintf("override %s: %s", path, d.Message)
		return Override{}, &d
	}
	if vn == nil { // empty value: null
		vn = &node{kind: nNull}
	}
	shift(vn, line, utf8.RuneCountInString(path)+1)

	cur := root
	t := reflect.TypeFor[Recipe]()
	col := 1
	for i, e := range elems {
		er := diag.Range{File: SetFile, Start: diag.Pos{Line: line, Col: col}, End: diag.Pos{Line: line, Col: col + utf8.RuneCountInString(e)}}
		col += utf8.RuneCountInString(e) + 1
		last := i == len(elems)-1
		var next reflect.Type
		switch {
		case t == stagesType:
			if cur.get(e) == nil {
				var names []string
				for _, k := range cur.keys {
					names = append(names, k.str)
				}
				d := diag.Errorf(er, "unknown-key", "override %s: the recipe has no stage %q", path, e)
				if s := suggest(e, names); s != "" {
					d = d.WithHint("did you mean %s?", s)
				} else {
					d = d.WithHint("stages: %s", strings.Join(names, ", "))
				}
				return Override{}, &d
			}
			next = reflect.TypeFor[Stage]()
		case t.Kind() == reflect.Struct && t != exprType:
			fs := fieldsOf(t)
			j := -1
			for k, f := range fs {
				if f.key == e {
					j = k
				}
			}
			if j < 0 {
				d := unknownKey(&node{str: e}, strings.Join(elems[:i], "."), t)
				d.Range = er
				d.Message = fmt.Sprintf("override %s: %s", path, d.Message)
				return Override{}, &d
			}
			next = fs[j].typ
			if next.Kind() == reflect.Pointer {
				next = next.Elem()
			}
		case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
			idx, err := strconv.Atoi(e)
			if err != nil || idx < 0 || cur.kind != nSeq || idx >= len(cur.seq) {
				d := diag.Errorf(er, "unknown-key", "override %s: %q is not an index of the list", path, e).
					WithHint("set the whole list instead: --set %s=[a, b]", strings.Join(elems[:i], "."))
				return Override{}, &d
			}
			if last {
				cur.seq[idx] = vn
			} else {
				cur = cur.seq[idx]
				t = t.Elem()
			}
			continue
		default:
			d := diag.Errorf(er, "unknown-key", "override %s: %s is a value, not a mapping", path, strings.Join(elems[:i], ".")).
				WithHint("set %s itself", strings.Join(elems[:i], "."))
			return Override{}, &d
		}
		if !last && !nestable(next) {
			d := diag.Errorf(er, "unknown-key", "override %s: %s is a value, not a mapping", path, strings.Join(elems[:i+1], ".")).
				WithHint("set %s itself", strings.Join(elems[:i+1], "."))
			return Override{}, &d
		}
		if cur.kind != nMap {
			// the file has a scalar or nothing here: replace it with a mapping
			*cur = node{kind: nMap, file: cur.file, pos: cur.pos, end: cur.end}
		}
		if last {
			setKey(cur, e, vn)
			break
		}
		child := cur.get(e)
		if child == nil {
			child = &node{kind: nMap, file: SetFile, pos: er.Start, end: er.End}
			setKey(cur, e, child)
		}
		cur, t = child, next
	}
	return Override{Path: path, Value: value}, nil
}

// nestable reports whether a path may continue below a value of type t.
func nestable(t reflect.Type) bool {
	switch {
	case t == exprType || t == targetsType:
		return false
	case t == stagesType:
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Slice, reflect.Array:
		return true
	}
	return false
}

func setKey(m *node, key string, v *node) {
	for i, k := range m.keys {
		if k.str == key {
			m.vals[i] = v
			return
		}
	}
	m.keys = append(m.keys, &node{kind: nString, str: key, file: v.file, pos: v.pos, end: v.end})
	m.vals = append(m.vals, v)
}

// shift moves a parsed override value to its place on the --set line.
func shift(n *node, line, cols int) {
	mv := func(p diag.Pos) diag.Pos {
		if !p.IsValid() {
			return diag.Pos{Line: line, Col: cols + 1}
		}
		return diag.Pos{Line: line, Col: p.Col + cols}
	}
	n.file = SetFile
	n.pos, n.end = mv(n.pos), mv(n.end)
	if n.m != nil {
		for i, p := range n.m.pos {
			n.m.pos[i] = mv(p)
		}
	}
	for _, k := range n.keys {
		shift(k, line, cols)
	}
	for _, v := range n.vals {
		shift(v, line, cols)
	}
	for _, v := range n.seq {
		shift(v, line, cols)
	}
}
