package tokenizer

import "unicode"

// A splitter refines a partition of a code point sequence. offsets are the
// lengths of consecutive pieces covering cpts; the result partitions each of
// those pieces further (llama.cpp's unicode_regex_split applies its regex
// list this way, one expression after another).
type splitter interface {
	split(cpts []rune, offsets []int) []int
}

// scanner is a hand-written matcher for one of llama.cpp's common
// expressions; it partitions cpts[ini:end] and appends piece lengths.
type scanner func(cpts []rune, ini, end int, out []int) []int

func (s scanner) split(cpts []rune, offsets []int) []int {
	out := make([]int, 0, len(offsets))
	start := 0
	for _, n := range offsets {
		out = s(cpts, start, start+n, out)
		start += n
	}
	return out
}

const outOfRange = -1

// scanState holds the helpers shared by the scanners (llama.cpp's _get_cpt,
// _get_flags and _add_token lambdas).
type scanState struct {
	cpts     []rune
	ini, end int
	prevEnd  int
	out      []int
}

func (s *scanState) cpt(pos int) rune {
	if pos >= s.ini && pos < s.end {
		return s.cpts[pos]
	}
	return outOfRange
}

func (s *scanState) flags(pos int) cptFlags {
	if pos >= s.ini && pos < s.end {
		return flagsOf(s.cpts[pos])
	}
	return 0
}

func (s *scanState) add(end int) int {
	n := end - s.prevEnd
	if n > 0 {
		s.out = append(s.out, n)
	}
	s.prevEnd = end
	return n
}

func isContraction1(r rune) bool { return r == 's' || r == 't' || r == 'm' || r == 'd' }
func isContraction2(a, b rune) bool {
	return (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')
}

// scanGPT2 implements 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// exactly as unicode_regex_split_custom_gpt2 does.
func scanGPT2(cpts []rune, ini, end int, out []int) []int {
	s := scanState{cpts: cpts, ini: ini, end: end, prevEnd: ini, out: out}
	for pos := ini; pos < end; {
		c := s.cpt(pos)
		fl := s.flags(pos)
		if c == '\'' && pos+1 < end {
			n := s.cpt(pos + 1)
			if isContraction1(n) {
				pos += s.add(pos + 2)
				continue
			}
			if pos+2 < end && isContraction2(n, s.cpt(pos+2)) {
				pos += s.add(pos + 3)
				continue
			}
		}
		f2 := fl
		if c == ' ' {
			f2 = s.flags(pos + 1)
		}
		if f2.letter() {
			if c == ' ' {
				pos++
			}
			for f2.letter() {
				pos++
				f2 = s.flags(pos)
			}
			s.add(pos)
			continue
		}
		if f2.number() {
			if c == ' ' {
				pos++
			}
			for f2.number() {
				pos++
				f2 = s.flags(pos)
			}
			s.add(pos)
			continue
		}
		if f2&(fWhitespace|fLetter|fNumber) == 0 && f2 != 0 {
			if c == ' ' {
				pos++
			}
			for f2&(fWhitespace|fLetter|fNumber) == 0 && f2 != 0 {
				pos++
				f2 = s.flags(pos)
			}
			s.add(pos)
			continue
		}
		nws := 0
		for s.flags(pos + nws).whitespace() {
			nws++
		}
		if nws > 1 && s.cpt(pos+nws) != outOfRange {
			pos += nws - 1
			s.add(pos)
			continue
		}
		if nws > 0 {
			pos += nws
			s.add(pos)
			continue
		}
		pos++
		s.add(pos)
	}
	return s.out
}

// scanLlama3 implements
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// exactly as unicode_regex_split_custom_llama3 does, quirks included.
func scanLlama3(cpts []rune, ini, end int, out []int) []int {
	s := scanState{cpts: cpts, ini: ini, end: end, prevEnd: ini, out: out}
	for pos := ini; pos < end; {
		c := s.cpt(pos)
		fl := s.flags(pos)
		if c == '\'' && pos+1 < end {
			n := unicode.ToLower(s.cpt(pos + 1))
			if isContraction1(n) {
				pos += s.add(pos + 2)
				continue
			}
			if pos+2 < end && isContraction2(n, unicode.ToLower(s.cpt(pos+2))) {
				pos += s.add(pos + 3)
				continue
			}
		}
		if !(c == '\r' || c == '\n' || fl.number()) {
			if fl.letter() || s.flags(pos+1).letter() {
				pos++
				for s.flags(pos).letter() {
					pos++
				}
				s.add(pos)
				continue
			}
		}
		if fl.number() {
			start := pos
			for s.flags(pos).number() {
				pos++
				if pos-start >= 3 {
					s.add(pos)
					start = pos
				}
			}
			s.add(pos)
			continue
		}
		f2 := fl
		if c == ' ' {
			f2 = s.flags(pos + 1)
		}
		if f2&(fWhitespace|fLetter|fNumber) == 0 && fl != 0 {
			if c == ' ' {
				pos++
			}
			for f2&(fWhitespace|fLetter|fNumber) == 0 && f2 != 0 {
				pos++
				f2 = s.flags(pos)
			}
			for c2 := s.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = s.cpt(pos) {
				pos++
			}
			s.add(pos)
			continue
		}
		nws, lastRN := 0, 0
		for s.flags(pos + nws).whitespace() {
			if c2 := s.cpt(pos + nws); c2 == '\r' || c2 == '\n' {
				lastRN = pos + nws + 1
			}
			nws++
		}
		if lastRN > 0 {
			pos = lastRN
			s.add(pos)
			continue
		}
		if nws > 1 && s.cpt(pos+nws) != outOfRange {
			pos += nws - 1
			s.add(pos)
			continue
		}
		if nws > 0 {
			pos += nws
			s.add(pos)
			continue
		}
		pos++
		s.add(pos)
	}
	return s.out
}

// isHan is llama.cpp's unicode_cpt_is_han (CJK ideograph blocks).
func isHan(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF, r >= 0x3400 && r <= 0x4DBF,
		r >= 0x20000 && r <= 0x2A6DF, r >= 0x2A700 && r <= 0x2B73F,
		r >= 0x2B740 && r <= 0x2B81F, r >= 0x2B820 && r <= 0x2CEAF,
		r >= 0x2CEB0 && r <= 0x2EBEF, r >= 0xF900 && r <= 0xFAFF,
		r >= 0x2F800 && r <= 0x2FA1F:
		return true
	}
	return false
}

// scanKimiK2 implements Kimi-K2's expression
// [\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|...|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// as unicode_regex_split_custom_kimi_k2 does (letters of any case).
func scanKimiK2(cpts []rune, ini, end int, out []int) []int {
	s := scanState{cpts: cpts, ini: ini, end: end, prevEnd: ini, out: out}
	letterNotHan := func(pos int) bool { return s.flags(pos).letter() && !isHan(s.cpt(pos)) }
	for pos := ini; pos < end; {
		c := s.cpt(pos)
		fl := s.flags(pos)
		if isHan(c) {
			for isHan(s.cpt(pos)) {
				pos++
			}
			s.add(pos)
			continue
		}
		lead := !(c == '\r' || c == '\n' || fl.letter() || fl.number())
		if (fl.letter() && !isHan(c)) || (lead && letterNotHan(pos+1)) {
			hasLead := false
			if lead {
				hasLead = true
				pos++
			}
			hasLetters := false
			for letterNotHan(pos) {
				hasLetters = true
				pos++
			}
			if hasLetters || (!hasLead && letterNotHan(pos)) {
				if !hasLetters {
					pos++
				}
				for letterNotHan(pos) {
					pos++
				}
				if s.cpt(pos) == '\'' && pos+1 < end {
					n := unicode.ToLower(s.cpt(pos + 1))
					if isContraction1(n) {
						pos += 2
					} else if pos+2 < end && isContraction2(n, unicode.ToLower(s.cpt(pos+2))) {
						pos += 3
					}
				}
				s.add(pos)
				continue
			} else if hasLead {
				pos--
			}
		}
		if fl.number() {
			start := pos
			for s.flags(pos).number() {
				pos++
				if pos-start >= 3 {
					s.add(pos)
					start = pos
				}
			}
			s.add(pos)
			continue
		}
		f2 := fl
		if c == ' ' {
			f2 = s.flags(pos + 1)
		}
		if f2&(fWhitespace|fLetter|fNumber) == 0 && f2 != 0 {
			if c == ' ' {
				pos++
			}
			for f2&(fWhitespace|fLetter|fNumber) == 0 && f2 != 0 {
				pos++
				f2 = s.flags(pos)
			}
			for c2 := s.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = s.cpt(pos) {
				pos++
			}
			s.add(pos)
			continue
		}
		nws, lastRN := 0, 0
		for s.flags(pos + nws).whitespace() {
			if c2 := s.cpt(pos + nws); c2 == '\r' || c2 == '\n' {
				lastRN = pos + nws + 1
			}
			nws++
		}
		if lastRN > 0 {
			pos = lastRN
			s.add(pos)
			continue
		}
		if nws > 1 && s.cpt(pos+nws) != outOfRange {
			pos += nws - 1
			s.add(pos)
			continue
		}
		if nws > 0 {
			pos += nws
			s.add(pos)
			continue
		}
		pos++
		s.add(pos)
	}
	return s.out
}

// scanAFMoEDigits splits digit runs into a leading group of len%3 digits and
// then groups of three, keeping everything else as it is
// (unicode_regex_split_custom_afmoe).
func scanAFMoEDigits(cpts []rune, ini, end int, out []int) []int {
	s := scanState{cpts: cpts, ini: ini, end: end, prevEnd: ini, out: out}
	for pos := ini; pos < end; {
		if !s.flags(pos).number() {
			pos++
			continue
		}
		start := pos
		for pos < end && s.flags(pos).number() {
			pos++
		}
		count := pos - start
		cur := start
		if r := count % 3; r > 0 {
			s.add(cur + r)
			cur += r
		}
		for cur < start+count {
			s.add(cur + 3)
			cur += 3
		}
	}
	if s.prevEnd < end {
		s.add(end)
	}
	return s.out
}

// The expressions that llama.cpp recognises by their exact text and replaces
// with a scanner.
const (
	reGPT2       = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	reGPT2HF     = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	reLlama3     = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reLlama3Alt  = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reAFMoEDigit = `\p{AFMoE_digits}`
	reKimiK2     = `\p{Han}+`
)

// customScanner returns the scanner llama.cpp would use for expr, if any.
func customScanner(expr string) scanner {
	switch expr {
	case reGPT2, reGPT2HF:
		return scanGPT2
	case reLlama3, reLlama3Alt:
		return scanLlama3
	case reAFMoEDigit:
		return scanAFMoEDigits
	case reKimiK2:
		return scanKimiK2
	}
	return nil
}
