package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// This file holds a small backtracking regular expression engine over code
// points, for the pre-tokenizer expressions that Go's regexp cannot run
// (lookahead, as in \s+(?!\S)). It supports what tokenizer patterns use:
// alternation, groups ((...), (?:...), (?i:...)), lookahead ((?=...),
// (?!...)), classes with ranges, negation and \p{..}/\P{..}, the escapes
// \s \S \d \D \w \W \b \B \r \n \t \f \v \xHH \uHHHH, quantifiers
// ? * + {n} {n,} {n,m} (greedy, lazy with ?, possessive + read as greedy),
// . ^ $. Matching is leftmost-first, as in ECMAScript and Oniguruma.

// reMode picks the meaning of classes.
type reMode int

const (
	// modeLlama reproduces llama.cpp's std::regex over "collapsed" text:
	// ASCII is matched literally (\p{P} and \p{S} are llama.cpp's ASCII
	// lists, \d and \w are ASCII) and \p{Lu}, \p{Ll}, ... all mean \p{L}.
	modeLlama reMode = iota
	// modeUnicode is Oniguruma/Rust-like Unicode semantics, for patterns
	// from a Hugging Face tokenizer.json.
	modeUnicode
)

type nodeKind int

const (
	nSet nodeKind = iota
	nSeq
	nAlt
	nRep
	nLook
	nBegin
	nEnd
	nWordB
	nNotWordB
)

type reNode struct {
	kind     nodeKind
	set      *charSet
	subs     []*reNode
	min, max int // max < 0: unbounded
	lazy     bool
	neg      bool // negative lookahead
}

type charSet struct {
	neg    bool
	fold   bool
	ranges []rune // lo, hi pairs
	preds  []func(rune) bool
	ascii  [2]uint64 // precomputed membership for r < 128
}

func (c *charSet) rawHas(r rune) bool {
	for i := 0; i < len(c.ranges); i += 2 {
		if r >= c.ranges[i] && r <= c.ranges[i+1] {
			return true
		}
	}
	for _, p := range c.preds {
		if p(r) {
			return true
		}
	}
	return false
}

func (c *charSet) slowHas(r rune) bool {
	in := c.rawHas(r)
	if !in && c.fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if c.rawHas(f) {
				in = true
				break
			}
		}
	}
	return in != c.neg
}

func (c *charSet) finish() {
	for r := rune(0); r < 128; r++ {
		if c.slowHas(r) {
			c.ascii[r>>6] |= 1 << (r & 63)
		}
	}
}

func (c *charSet) has(r rune) bool {
	if r >= 0 && r < 128 {
		return c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	return c.slowHas(r)
}

// regex is a compiled expression.
type regex struct {
	root *reNode
	mode reMode
	// start, when set, holds the code points a match can begin with (the
	// pattern cannot match the empty string); other positions are skipped.
	start *charSet
}

// firstChars computes the code points that can begin a match of n, and
// whether n can match the empty string. ok is false when unknown.
func firstChars(n *reNode) (preds []func(rune) bool, nullable, ok bool) {
	switch n.kind {
	case nSet:
		return []func(rune) bool{n.set.has}, false, true
	case nLook, nBegin, nEnd, nWordB, nNotWordB:
		return nil, true, true
	case nRep:
		p, null, ok := firstChars(n.subs[0])
		return p, null || n.min == 0, ok
	case nAlt:
		for _, sub := range n.subs {
			p, null, ok := firstChars(sub)
			if !ok {
				return nil, false, false
			}
			preds = append(preds, p...)
			nullable = nullable || null
		}
		return preds, nullable, true
	case nSeq:
		for _, sub := range n.subs {
			p, null, ok := firstChars(sub)
			if !ok {
				return nil, false, false
			}
			preds = append(preds, p...)
			if !null {
				return preds, false, true
			}
		}
		return preds, true, true
	}
	return nil, false, false
}

type reParser struct {
	src  []rune
	pos  int
	mode reMode
	fold bool
}

var errRegex = errors.New("unsupported regular expression")

func compileRegex(expr string, mode reMode) (*regex, error) {
	p := &reParser{src: []rune(expr), mode: mode}
	n, err := p.alt()
	if err == nil && p.pos < len(p.src) {
		err = p.errf("unbalanced ')'")
	}
	if err != nil {
		return nil, fmt.Errorf("pre-tokenizer pattern %q: %w", expr, err)
	}
	re := &regex{root: n, mode: mode}
	if preds, nullable, ok := firstChars(n); ok && !nullable {
		re.start = &charSet{preds: preds}
		re.start.finish()
	}
	return re, nil
}

func (p *reParser) errf(format string, a ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", errRegex, p.pos, fmt.Sprintf(format, a...))
}

func (p *reParser) more() bool { return p.pos < len(p.src) }
func (p *reParser) peek() rune { return p.src[p.pos] }

func (p *reParser) alt() (*reNode, error) {
	var alts []*reNode
	for {
		s, err := p.seq()
		if err != nil {
			return nil, err
		}
		alts = append(alts, s)
		if p.more() && p.peek() == '|' {
			p.pos++
			continue
		}
		break
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &reNode{kind: nAlt, subs: alts}, nil
}

func (p *reParser) seq() (*reNode, error) {
	var items []*reNode
	for p.more() && p.peek() != '|' && p.peek() != ')' {
		atom, err := p.atom()
		if err != nil {
			return nil, err
		}
		atom, err = p.quant(atom)
		if err != nil {
			return nil, err
		}
		items = append(items, atom)
	}
	items = mergeLookSets(items)
	if len(items) == 1 {
		return items[0], nil
	}
	return &reNode{kind: nSeq, subs: items}, nil
}

// mergeLookSets rewrites a lookahead on one class followed by a class,
// (?=[A])[B] or (?![A])[B], into the single class A∩B (or B minus A), so
// that the tekken/gpt-4o idiom ((?=[\p{L}])([^a-z]))* runs as a plain
// character repetition.
func mergeLookSets(items []*reNode) []*reNode {
	out := items[:0:0]
	for i := 0; i < len(items); i++ {
		n := items[i]
		if n.kind == nLook && n.subs[0].kind == nSet && i+1 < len(items) && items[i+1].kind == nSet {
			a, b, neg := n.subs[0].set, items[i+1].set, n.neg
			set := &charSet{preds: []func(rune) bool{func(r rune) bool { return a.has(r) != neg && b.has(r) }}}
			set.finish()
			out = append(out, &reNode{kind: nSet, set: set})
			i++
			continue
		}
		out = append(out, n)
	}
	return out
}

func (p *reParser) quant(atom *reNode) (*reNode, error) {
	for p.more() {
		min, max := -1, -1
		start := p.pos
		switch p.peek() {
		case '?':
			min, max = 0, 1
			p.pos++
		case '*':
			min, max = 0, -1
			p.pos++
		case '+':
			min, max = 1, -1
			p.pos++
		case '{':
			lo, hi, ok := p.braces()
			if !ok {
				p.pos = start
				return atom, nil
			}
			min, max = lo, hi
		default:
			return atom, nil
		}
		if atom.kind == nBegin || atom.kind == nEnd || atom.kind == nLook {
			return nil, p.errf("quantifier after an assertion")
		}
		n := &reNode{kind: nRep, subs: []*reNode{atom}, min: min, max: max}
		if p.more() && p.peek() == '?' {
			n.lazy = true
			p.pos++
		} else if p.more() && p.peek() == '+' {
			p.pos++ // possessive: read as greedy
		}
		atom = n
	}
	return atom, nil
}

// braces parses {n}, {n,}, {n,m}; ok is false when the brace is a literal.
func (p *reParser) braces() (lo, hi int, ok bool) {
	end := p.pos + 1
	for end < len(p.src) && p.src[end] != '}' {
		end++
	}
	if end >= len(p.src) {
		return 0, 0, false
	}
	body := string(p.src[p.pos+1 : end])
	a, b, comma := strings.Cut(body, ",")
	const limit = 1000
	lo, err := strconv.Atoi(a)
	if err != nil || lo < 0 || lo > limit {
		return 0, 0, false
	}
	hi = lo
	if comma {
		if b == "" {
			hi = -1
		} else if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > limit {
			return 0, 0, false
		}
	}
	p.pos = end + 1
	return lo, hi, true
}

func (p *reParser) atom() (*reNode, error) {
	c := p.peek()
	switch c {
	case '(':
		return p.group()
	case '[':
		set, err := p.class()
		if err != nil {
			return nil, err
		}
		return &reNode{kind: nSet, set: set}, nil
	case '.':
		p.pos++
		if p.mode == modeUnicode { // Oniguruma: anything but a newline
			return p.setNode(&charSet{neg: true, ranges: []rune{'\n', '\n'}}), nil
		}
		// ECMAScript: anything but a line terminator
		return p.setNode(&charSet{neg: true, ranges: []rune{'\n', '\n', '\r', '\r', 0x2028, 0x2029}}), nil
	case '^':
		p.pos++
		return &reNode{kind: nBegin}, nil
	case '$':
		p.pos++
		return &reNode{kind: nEnd}, nil
	case '\\':
		p.pos++
		if !p.more() {
			return nil, p.errf("trailing backslash")
		}
		switch p.peek() {
		case 'b':
			p.pos++
			return &reNode{kind: nWordB}, nil
		case 'B':
			p.pos++
			return &reNode{kind: nNotWordB}, nil
		}
		set := &charSet{}
		if err := p.escape(set); err != nil {
			return nil, err
		}
		return p.setNode(set), nil
	case '*', '+', '?':
		return nil, p.errf("nothing to repeat")
	}
	p.pos++
	return p.setNode(&charSet{ranges: []rune{c, c}}), nil
}

func (p *reParser) setNode(s *charSet) *reNode {
	s.fold = s.fold || p.fold
	s.finish()
	return &reNode{kind: nSet, set: s}
}

func (p *reParser) group() (*reNode, error) {
	p.pos++ // (
	saved := p.fold
	defer func() { p.fold = saved }()
	var look, neg bool
	if p.more() && p.peek() == '?' {
		p.pos++
		if !p.more() {
			return nil, p.errf("unterminated group")
		}
		switch c := p.peek(); {
		case c == ':':
			p.pos++
		case c == '=':
			look = true
			p.pos++
		case c == '!':
			look, neg = true, true
			p.pos++
		case c == 'i':
			p.pos++
			if !p.more() || p.peek() != ':' {
				return nil, p.errf("only (?i:...) flag groups are supported")
			}
			p.pos++
			p.fold = true
		default:
			return nil, p.errf("unsupported group (?%c", c)
		}
	}
	n, err := p.alt()
	if err != nil {
		return nil, err
	}
	if !p.more() || p.peek() != ')' {
		return nil, p.errf("missing ')'")
	}
	p.pos++
	if look {
		return &reNode{kind: nLook, subs: []*reNode{n}, neg: neg}, nil
	}
	return n, nil
}

func (p *reParser) class() (*charSet, error) {
	p.pos++ // [
	set := &charSet{}
	if p.more() && p.peek() == '^' {
		set.neg = true
		p.pos++
	}
	first := true
	for {
		if !p.more() {
			return nil, p.errf("missing ']'")
		}
		c := p.peek()
		if c == ']' && !first {
			p.pos++
			break
		}
		first = false
		var lo rune
		if c == '\\' {
			p.pos++
			if !p.more() {
				return nil, p.errf("trailing backslash")
			}
			single, r, err := p.classEscape(set)
			if err != nil {
				return nil, err
			}
			if !single {
				continue
			}
			lo = r
		} else {
			lo = c
			p.pos++
		}
		hi := lo
		if p.pos+1 < len(p.src) && p.peek() == '-' && p.src[p.pos+1] != ']' {
			p.pos++
			c2 := p.peek()
			if c2 == '\\' {
				p.pos++
				if !p.more() {
					return nil, p.errf("trailing backslash")
				}
				single, r, err := p.classEscape(set)
				if err != nil {
					return nil, err
				}
				if !single {
					return nil, p.errf("class escape as a range end")
				}
				hi = r
			} else {
				hi = c2
				p.pos++
			}
			if hi < lo {
				return nil, p.errf("range out of order")
			}
		}
		set.ranges = append(set.ranges, lo, hi)
	}
	set.fold = p.fold
	set.finish()
	return set, nil
}

// classEscape reads an escape inside a class; single reports a plain
// character (returned in r), otherwise a class was added to set.
func (p *reParser) classEscape(set *charSet) (single bool, r rune, err error) {
	switch p.peek() {
	case 'b':
		p.pos++
		return true, '\b', nil
	case 's', 'S', 'd', 'D', 'w', 'W', 'p', 'P':
		sub := &charSet{}
		if err := p.escape(sub); err != nil {
			return false, 0, err
		}
		if sub.neg {
			inner := sub.preds
			set.preds = append(set.preds, func(r rune) bool {
				for _, f := range inner {
					if f(r) {
						return false
					}
				}
				return true
			})
		} else {
			set.preds = append(set.preds, sub.preds...)
		}
		return false, 0, nil
	}
	sub := &charSet{}
	if err := p.escape(sub); err != nil {
		return false, 0, err
	}
	return true, sub.ranges[0], nil
}

// escape reads the escape after a backslash into set.
func (p *reParser) escape(set *charSet) error {
	c := p.peek()
	p.pos++
	lit := func(r rune) error { set.ranges = append(set.ranges, r, r); return nil }
	switch c {
	case 'n':
		return lit('\n')
	case 'r':
		return lit('\r')
	case 't':
		return lit('\t')
	case 'f':
		return lit('\f')
	case 'v':
		return lit('\v')
	case '0':
		return lit(0)
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			return p.errf("short \\%c escape", c)
		}
		v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+n]), 16, 32)
		if err != nil {
			return p.errf("bad \\%c escape", c)
		}
		p.pos += n
		return lit(rune(v))
	case 's', 'S':
		set.preds = append(set.preds, isSpaceRE)
		set.neg = c == 'S'
		return nil
	case 'd', 'D':
		set.preds = append(set.preds, p.digitPred())
		set.neg = c == 'D'
		return nil
	case 'w', 'W':
		set.preds = append(set.preds, p.wordPred())
		set.neg = c == 'W'
		return nil
	case 'p', 'P':
		if !p.more() || p.peek() != '{' {
			return p.errf("\\%c without {name}", c)
		}
		end := p.pos
		for end < len(p.src) && p.src[end] != '}' {
			end++
		}
		if end >= len(p.src) {
			return p.errf("unterminated \\%c{", c)
		}
		name := string(p.src[p.pos+1 : end])
		p.pos = end + 1
		pred, err := p.property(name)
		if err != nil {
			return err
		}
		set.preds = append(set.preds, pred)
		set.neg = c == 'P'
		return nil
	}
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '1' && c <= '9' {
		return p.errf("unsupported escape \\%c", c)
	}
	return lit(c)
}

func isSpaceRE(r rune) bool {
	if r < 128 {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.Is(unicode.White_Space, r)
}

func (p *reParser) digitPred() func(rune) bool {
	if p.mode == modeLlama {
		return func(r rune) bool { return r >= '0' && r <= '9' }
	}
	return func(r rune) bool { return unicode.Is(unicode.Nd, r) }
}

func (p *reParser) wordPred() func(rune) bool {
	if p.mode == modeLlama {
		return isASCIIWord
	}
	return func(r rune) bool {
		return r == '_' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r)
	}
}

func isASCIIWord(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// llama.cpp's ASCII members of \p{P} and \p{S} in its collapsed regexes.
const (
	llamaASCIIPunct  = "!\"#%&'()*,-./:;?@[\\]_{}"
	llamaASCIISymbol = "$+<=>^`|"
)

func (p *reParser) property(name string) (func(rune) bool, error) {
	if p.mode == modeLlama {
		var cat cptFlags
		var ascii func(rune) bool
		switch name {
		case "N":
			cat, ascii = fNumber, func(r rune) bool { return r >= '0' && r <= '9' }
		case "L", "Lu", "Ll", "Lt", "Lm", "Lo":
			cat, ascii = fLetter, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
		case "P":
			cat, ascii = fPunct, func(r rune) bool { return strings.ContainsRune(llamaASCIIPunct, r) }
		case "S":
			cat, ascii = fSymbol, func(r rune) bool { return strings.ContainsRune(llamaASCIISymbol, r) }
		case "M":
			cat, ascii = fMark, func(rune) bool { return false }
		default:
			return nil, p.errf("unsupported property \\p{%s}", name)
		}
		return func(r rune) bool {
			if r < 128 {
				return ascii(r)
			}
			f := flagsOf(r)
			return f&fWhitespace == 0 && f&cat != 0
		}, nil
	}
	if t, ok := unicode.Categories[name]; ok {
		return func(r rune) bool { return unicode.Is(t, r) }, nil
	}
	if t, ok := unicode.Scripts[name]; ok {
		return func(r rune) bool { return unicode.Is(t, r) }, nil
	}
	return nil, p.errf("unsupported property \\p{%s}", name)
}

// matcher runs one search over a code point slice.
type matcher struct {
	in   []rune
	mode reMode
	// steps counts work against budget, so that a hostile pattern (say
	// (.*)*x) cannot hang the tokenizer: once the budget is spent every
	// search fails and the rest of the text stays one piece.
	steps, budget int
}

// stepBudget is the work allowed for all searches over one piece of text:
// generous for real pre-tokenizer patterns (a few steps per code point,
// quadratic only within whitespace runs), small enough to stop runaway
// backtracking within milliseconds.
func stepBudget(n int) int { return 1<<20 + 256*n }

func (m *matcher) word(i int) bool {
	if i < 0 || i >= len(m.in) {
		return false
	}
	if m.mode == modeLlama {
		return isASCIIWord(m.in[i])
	}
	r := m.in[i]
	return r == '_' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r)
}

func (m *matcher) match(n *reNode, i int, k func(int) bool) bool {
	m.steps++
	if m.steps > m.budget {
		return false
	}
	switch n.kind {
	case nSet:
		if i < len(m.in) && n.set.has(m.in[i]) {
			return k(i + 1)
		}
		return false
	case nSeq:
		return m.seq(n.subs, i, k)
	case nAlt:
		for _, s := range n.subs {
			if m.match(s, i, k) {
				return true
			}
		}
		return false
	case nRep:
		return m.rep(n, i, k)
	case nLook:
		ok := m.match(n.subs[0], i, func(int) bool { return true })
		if ok != n.neg {
			return k(i)
		}
		return false
	case nBegin:
		return i == 0 && k(i)
	case nEnd:
		return i == len(m.in) && k(i)
	case nWordB:
		return m.word(i-1) != m.word(i) && k(i)
	case nNotWordB:
		return m.word(i-1) == m.word(i) && k(i)
	}
	return false
}

func (m *matcher) seq(subs []*reNode, i int, k func(int) bool) bool {
	if len(subs) == 0 {
		return k(i)
	}
	return m.match(subs[0], i, func(j int) bool { return m.seq(subs[1:], j, k) })
}

func (m *matcher) rep(n *reNode, i int, k func(int) bool) bool {
	sub := n.subs[0]
	if sub.kind == nSet {
		// Single-character body: count the run once, then try lengths.
		limit := len(m.in) - i
		if n.max >= 0 && n.max < limit {
			limit = n.max
		}
		cnt := 0
		for cnt < limit && sub.set.has(m.in[i+cnt]) {
			cnt++
		}
		if cnt < n.min {
			return false
		}
		if n.lazy {
			for c := n.min; c <= cnt; c++ {
				if m.steps++; m.steps > m.budget {
					return false
				}
				if k(i + c) {
					return true
				}
			}
			return false
		}
		for c := cnt; c >= n.min; c-- {
			if m.steps++; m.steps > m.budget {
				return false
			}
			if k(i + c) {
				return true
			}
		}
		return false
	}
	var try func(count, pos int) bool
	try = func(count, pos int) bool {
		if n.lazy && count >= n.min && k(pos) {
			return true
		}
		if n.max < 0 || count < n.max {
			if m.match(sub, pos, func(j int) bool {
				if j == pos && count >= n.min {
					return false // an empty iteration cannot make progress
				}
				return try(count+1, j)
			}) {
				return true
			}
		}
		return !n.lazy && count >= n.min && k(pos)
	}
	return try(0, i)
}

// find returns the leftmost match at or after from; nonEmptyAt asks for a
// non-empty match starting exactly at from (used after an empty match, as
// std::regex_iterator does).
func (r *regex) find(m *matcher, from int, nonEmptyAt bool) (int, int, bool) {
	end := -1
	for s := from; s <= len(m.in) && m.steps <= m.budget; s++ {
		if r.start != nil && (s == len(m.in) || !r.start.has(m.in[s])) {
			continue // no match can begin here
		}
		ok := r.root != nil && m.match(r.root, s, func(e int) bool {
			if nonEmptyAt && s == from && e == s {
				return false
			}
			end = e
			return true
		})
		if ok {
			return s, end, true
		}
		if nonEmptyAt && s == from {
			continue
		}
	}
	return 0, 0, false
}

// matches lists the [start, end) spans of successive matches in in.
func (r *regex) matches(in []rune) [][2]int {
	m := &matcher{in: in, mode: r.mode, budget: stepBudget(len(in))}
	var out [][2]int
	pos, afterEmpty := 0, false
	for pos <= len(in) {
		s, e, ok := r.find(m, pos, afterEmpty)
		if !ok {
			break
		}
		out = append(out, [2]int{s, e})
		afterEmpty = e == s
		pos = e
	}
	return out
}

// split is the llama.cpp splitter: every match and every gap between
// matches becomes a piece.
func (r *regex) split(cpts []rune, offsets []int) []int {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		prev := 0
		for _, sp := range r.matches(cpts[start : start+n]) {
			if sp[0] > prev {
				out = append(out, sp[0]-prev)
			}
			if sp[1] > sp[0] {
				out = append(out, sp[1]-sp[0])
			}
			prev = sp[1]
		}
		if prev < n {
			out = append(out, n-prev)
		}
		start += n
	}
	return out
}
