package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// cptFlags mirrors llama.cpp's unicode_cpt_flags: one category bit per code
// point plus a whitespace bit. The categories come from Go's unicode tables;
// llama.cpp ships its own tables (unicode-data.cpp), generated from a
// possibly different Unicode version, so code points assigned in one
// version and not the other may classify differently at the edges.
type cptFlags uint16

const (
	fUndefined  cptFlags = 1 << 0
	fNumber     cptFlags = 1 << 1
	fLetter     cptFlags = 1 << 2
	fSeparator  cptFlags = 1 << 3
	fMark       cptFlags = 1 << 4
	fPunct      cptFlags = 1 << 5
	fSymbol     cptFlags = 1 << 6
	fControl    cptFlags = 1 << 7
	fWhitespace cptFlags = 1 << 8
)

func (f cptFlags) letter() bool     { return f&fLetter != 0 }
func (f cptFlags) number() bool     { return f&fNumber != 0 }
func (f cptFlags) whitespace() bool { return f&fWhitespace != 0 }

var asciiFlags [128]cptFlags

func init() {
	for r := rune(0); r < 128; r++ {
		asciiFlags[r] = computeFlags(r)
	}
}

// flagsOf classifies a code point. Code points outside Unicode get
// fUndefined, never zero: zero means "outside the text" in the scanners.
func flagsOf(r rune) cptFlags {
	if r >= 0 && r < 128 {
		return asciiFlags[r]
	}
	return computeFlags(r)
}

func computeFlags(r rune) cptFlags {
	var f cptFlags
	switch {
	case r < 0 || r > unicode.MaxRune:
		return fUndefined
	case unicode.IsLetter(r):
		f = fLetter
	case unicode.IsNumber(r):
		f = fNumber
	case unicode.IsMark(r):
		f = fMark
	case unicode.IsPunct(r):
		f = fPunct
	case unicode.IsSymbol(r):
		f = fSymbol
	case unicode.Is(unicode.Z, r):
		f = fSeparator
	case unicode.IsControl(r) || unicode.Is(unicode.C, r):
		f = fControl
	default:
		f = fUndefined
	}
	if unicode.Is(unicode.White_Space, r) {
		f |= fWhitespace
	}
	return f
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length announced by
// a lead byte, 1 for continuation and ASCII bytes.
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// codepoints decodes UTF-8 as llama.cpp does: each invalid byte becomes
// U+FFFD and decoding resumes at the next byte.
func codepoints(s string) []rune {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			out = append(out, rune(c))
			i++
			continue
		}
		r, n := decodeLlama(s[i:])
		out = append(out, r)
		i += n
	}
	return out
}

// decodeLlama follows unicode_cpt_from_utf8: it checks continuation bytes but
// not overlong forms or surrogates, and returns (U+FFFD, 1) on error.
func decodeLlama(s string) (rune, int) {
	c := s[0]
	cont := func(k int) bool { return k < len(s) && s[k]&0xC0 == 0x80 }
	switch {
	case c&0x40 == 0:
		return utf8.RuneError, 1
	case c&0x20 == 0:
		if !cont(1) {
			return utf8.RuneError, 1
		}
		return rune(c&0x1F)<<6 | rune(s[1]&0x3F), 2
	case c&0x10 == 0:
		if !cont(1) || !cont(2) {
			return utf8.RuneError, 1
		}
		return rune(c&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	case c&0x08 == 0:
		if !cont(1) || !cont(2) || !cont(3) {
			return utf8.RuneError, 1
		}
		return rune(c&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
	return utf8.RuneError, 1
}

// appendRune encodes r as llama.cpp's unicode_cpt_to_utf8 does (which, unlike
// utf8.AppendRune, encodes surrogates as they are).
func appendRune(b []byte, r rune) []byte {
	switch {
	case r >= 0 && r <= 0x7F:
		return append(b, byte(r))
	case r <= 0x7FF:
		return append(b, 0xC0|byte(r>>6&0x1F), 0x80|byte(r&0x3F))
	case r <= 0xFFFF:
		return append(b, 0xE0|byte(r>>12&0x0F), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	case r <= 0x10FFFF:
		return append(b, 0xF0|byte(r>>18&0x07), 0x80|byte(r>>12&0x3F), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	}
	return utf8.AppendRune(b, utf8.RuneError)
}

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest
// to U+0100 onwards in byte order.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteEncode maps each byte of s to its GPT-2 code point.
func byteEncode(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteToRune[s[i]])
	}
	return dst
}

// byteDecode reverses byteEncode; code points outside the table are kept as
// their UTF-8 bytes.
func byteDecode(dst []byte, s string) []byte {
	for _, r := range s {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
		} else {
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
