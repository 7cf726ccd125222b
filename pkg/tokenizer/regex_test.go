package tokenizer

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// goSpace spells \s for Go's regexp (whose \s is ASCII-only) as the
// White_Space property that this engine uses.
const goSpace = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// goPattern rewrites \s for Go's regexp, inside and outside classes.
func goPattern(pat string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\' && i+1 < len(pat) && pat[i+1] == 's':
			if inClass {
				b.WriteString(goSpace)
			} else {
				b.WriteString("[" + goSpace + "]")
			}
			i++
			continue
		case c == '\\' && i+1 < len(pat):
			b.WriteByte(c)
			b.WriteByte(pat[i+1])
			i++
			continue
		case c == '[' && !inClass:
			inClass = true
		case c == ']' && inClass:
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// randomText draws strings from pieces that exercise the categories the
// pre-tokenizers care about.
func randomText(r *rand.Rand, n int) string {
	alphabet := []string{
		"a", "B", "z", "Q", "'", "s", "t", "re", "LL", "ve", "'S", " ", " ", "  ", "\n", "\r\n", "\t", "\v",
		"1", "22", "345", "٣", "Ⅻ", "é", "Ü", "中", "文", "ç", "!", "?", ".", ",", "~", "$", "+", "(", ")",
		"🦙", "\u00a0", "\u3000", "\u0301", "_", "-", "/", "ǅ", "ß", "\x00", "\u2028", "ー", "한",
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(alphabet[r.Intn(len(alphabet))])
	}
	return b.String()
}

// runeSpans converts Go's byte-offset matches into code point spans.
func runeSpans(s string, byteSpans [][]int) [][2]int {
	out := make([][2]int, len(byteSpans))
	for i, sp := range byteSpans {
		out[i] = [2]int{utf8.RuneCountInString(s[:sp[0]]), utf8.RuneCountInString(s[:sp[1]])}
	}
	return out
}

// TestRegexAgainstGo checks the backtracking engine against Go's regexp
// (the independent reference) on patterns without lookahead, where both
// must find the same leftmost-first matches.
func TestRegexAgainstGo(t *testing.T) {
	patterns := []string{
		`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+`,
		`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+`,
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|\p{N}`,
		`(a|ab)(c|bcd)|[A-Za-z]+|[0-9]{2,4}|.`,
		`(?:'[sS]|'[tT])|\p{L}+?\p{Ll}|\p{Nd}{2}`,
		`[!-/:-@\[-` + "`" + `{-~]+|[一-龥가-힣]+|\P{L}{2,3}`,
		`\s?[A-Za-zµÀ-ÖØ-ö]+|x*?y|(?:ab)+?c`,
		` ?[^(\s|.,!?…。，、।۔،)]+`,
	}
	r := rand.New(rand.NewSource(1))
	for _, pat := range patterns {
		mine, err := compileRegex(pat, modeUnicode)
		if err != nil {
			t.Fatalf("compile %q: %v", pat, err)
		}
		ref := regexp.MustCompile(goPattern(pat))
		for i := 0; i < 300; i++ {
			s := randomText(r, 1+r.Intn(20))
			want := runeSpans(s, ref.FindAllStringIndex(s, -1))
			got := mine.matches([]rune(s))
			if len(got) != len(want) {
				t.Fatalf("pattern %q on %q:\n got %v\nwant %v", pat, s, got, want)
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("pattern %q on %q:\n got %v\nwant %v", pat, s, got, want)
				}
			}
		}
	}
}

// TestScannersAgainstRegex checks llama.cpp's hand-written scanners against
// the regex engine running the expressions they stand for.
func TestScannersAgainstRegex(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   scanner
		expr string
	}{
		{"gpt2", scanGPT2, reGPT2HF},
		{"llama3", scanLlama3, reLlama3},
	} {
		re, err := compileRegex(tc.expr, modeUnicode)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewSource(2))
		for i := 0; i < 2000; i++ {
			s := randomText(r, 1+r.Intn(25))
			want := splitWords(s, []splitter{re})
			got := splitWords(s, []splitter{tc.sc})
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("%s on %q:\n scanner %q\n regex   %q", tc.name, s, got, want)
			}
		}
	}
}

func TestRegexFeatures(t *testing.T) {
	for _, tc := range []struct {
		pat, in string
		mode    reMode
		want    []string // the pieces of llama.cpp-style splitting
	}{
		{`\s+(?!\S)|\s+`, "a   b", modeLlama, []string{"a", "  ", " ", "b"}},
		{`\s+(?!\S)`, "a \tb", modeLlama, []string{"a", " ", "\tb"}}, // gaps stay whole
		{`\p{N}{1,3}`, "1234567", modeLlama, []string{"123", "456", "7"}},
		{`(?=(\d{3})+(?!\d))`, "1234567", modeLlama, []string{"1", "234", "567"}},
		{`\d{1,3}(?=(?:\d{3})*\b)`, "1234567 89", modeLlama, []string{"1", "234", "567", " ", "89"}},
		{`\s+$`, "ab  ", modeLlama, []string{"ab", "  "}},
		{`[\p{P}\$\+<=>\^~\|]+`, "a~b$c.", modeLlama, []string{"a", "~", "b", "$", "c", "."}},
		// llama.cpp's collapsed \p{S} has no '~': it stays with its letter run.
		{`\p{S}+|\p{L}+`, "a~b", modeLlama, []string{"a", "~", "b"}},
		{`\p{S}+|[a-z~]+`, "a~b+", modeLlama, []string{"a~b", "+"}},
		{`\p{S}+|[a-z]+`, "a~b", modeUnicode, []string{"a", "~", "b"}},
		{`((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*`, "HELLOworld Été", modeLlama, []string{"HELLOworld", " ", "Été"}},
		{`(?i:'s|'ll)`, "it'S we'Ll", modeUnicode, []string{"it", "'S", " we", "'Ll"}},
		{`<sentinel:[0-9]+>`, "x<sentinel:12>y", modeLlama, []string{"x", "<sentinel:12>", "y"}},
		{`a{2}|b{2,}|c{,2}`, "aaabbbc{,2}", modeLlama, []string{"aa", "a", "bbb", "c{,2}"}},
	} {
		re, err := compileRegex(tc.pat, tc.mode)
		if err != nil {
			t.Fatalf("compile %q: %v", tc.pat, err)
		}
		got := splitWords(tc.in, []splitter{re})
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q on %q: got %q, want %q", tc.pat, tc.in, got, tc.want)
		}
	}
}

func TestRegexErrors(t *testing.T) {
	for _, pat := range []string{`(?<=a)b`, `a(`, `a)`, `[a`, `\p{Nope}`, `*a`, `\q`, `[z-a]`, `(?x)`} {
		if _, err := compileRegex(pat, modeUnicode); err == nil {
			t.Errorf("compile %q: no error", pat)
		}
	}
}

// TestPreTokenizerTable compiles every named pre-tokenizer and checks the
// splits of a few against what their expressions mean.
func TestPreTokenizerTable(t *testing.T) {
	for _, name := range append(PreTokenizers(), "") {
		cfg, err := lookupPre(name)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := compileSplitters(cfg.exprs, modeLlama)
		if err != nil {
			t.Errorf("pre-tokenizer %q: %v", name, err)
			continue
		}
		// Every splitter must partition the text: the pieces join back.
		in := "Hello World! It's 2024 — 12345 ,,, 中文 ünï  \n\n  x"
		if got := strings.Join(splitWords(in, sp), ""); got != in {
			t.Errorf("pre-tokenizer %q loses text: %q", name, got)
		}
	}
	if _, err := lookupPre("no-such-pre"); err == nil {
		t.Error("unknown pre-tokenizer: no error")
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"gpt-2", "Hello world's 12345!!  x", []string{"Hello", " world", "'s", " 12345", "!!", " ", " x"}},
		{"llama-bpe", "Hello WORLD'S 12345!!\n\n x", []string{"Hello", " WORLD", "'S", " ", "123", "45", "!!\n\n", " x"}},
		{"qwen2", "ab 123", []string{"ab", " ", "1", "2", "3"}},
		{"starcoder", "x 42", []string{"x", " ", "4", "2"}},
		{"deepseek-coder", "foo(1)\nbar", []string{"foo", "(", "1", ")", "\n", "bar"}},
		{"bloom", "Hi, you. ok", []string{"Hi", ",", " you", ".", " ok"}},
		{"gpt-4o", "HelloWorld don't", []string{"Hello", "World", " don't"}},
	} {
		cfg, _ := lookupPre(tc.name)
		sp, err := compileSplitters(cfg.exprs, modeLlama)
		if err != nil {
			t.Fatal(err)
		}
		got := splitWords(tc.in, sp)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s on %q:\n got %q\nwant %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// FuzzRegex feeds arbitrary patterns and inputs to the engine: compiling
// may fail, but nothing may panic or hang, and splits must cover the input.
func FuzzRegex(f *testing.F) {
	for _, p := range []string{reGPT2, reLlama3, reTekken, reJais2, reBloom, `(?=(\d{3})+(?!\d))`, `a{2,}?b|[^\p{L}]+`, `(a*)*b`, `((a|)+)+$`} {
		f.Add(p, "Hello  world 12345 'll ..")
	}
	f.Fuzz(func(t *testing.T, pat, in string) {
		if len(pat) > 200 || len(in) > 200 {
			return
		}
		for _, mode := range []reMode{modeLlama, modeUnicode} {
			re, err := compileRegex(pat, mode)
			if err != nil {
				continue
			}
			cpts := []rune(in)
			total := 0
			for _, n := range re.split(cpts, []int{len(cpts)}) {
				if n <= 0 {
					t.Fatalf("%q on %q: piece of length %d", pat, in, n)
				}
				total += n
			}
			if total != len(cpts) {
				t.Fatalf("%q on %q: pieces cover %d of %d code points", pat, in, total, len(cpts))
			}
		}
	})
}
