package tokenizer

import (
	"fmt"
	"sort"
)

// preConfig is what a tokenizer.ggml.pre name selects in llama.cpp
// (llama_vocab::impl::load and llm_tokenizer_bpe): the split expressions,
// applied in order, and the flags that come with the name.
type preConfig struct {
	exprs        []string
	ignoreMerges bool // a word that is a whole token skips the merges
	addBOS       bool // default for tokenizer.ggml.add_bos_token
	noBOS        bool // the name clears the BOS token (chatglm)
	keepSpaces   bool // clean_spaces=false: decoding does not tidy " ," etc.
	rawBytes     bool // no GPT-2 byte encoding; byte fallback as <0xNN>
	escapeSpaces bool // spaces become U+2581 before splitting (gemma4)
}

// The expressions, as llama.cpp writes them (its adapted versions where
// the original used (?i:...) or other constructs std::regex lacks). Code
// points that Unicode normalization would rewrite (U+1F7D, U+1FBE, U+2126,
// U+212A, U+F900, ...) are spelled as \u escapes so that no editor or tool
// can change them.
const (
	reQwen2        = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reQwen35       = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reJais2        = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}`
	reBloom        = ` ?[^(\s|.,!?…。，、।۔،)]+`
	reDeepseekLLM  = `\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+`
	reDeepseekPunc = `\s?[!-/:-~！-／：-～‘-‟　-。]+`
	reCJK          = `[一-龥ࠀ-一가-퟿]+`
	reDeepseekV3   = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
	reSpark25      = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+"
	reKana         = `[一-龥぀-ゟ゠-ヿ]+`
	reYoutuCJK     = `[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+`
	reYoutu        = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reTekken       = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reGPT4o        = `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reGraniteMulti = `[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reTinyAya      = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reBailing      = `'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`
	reSeedCoder    = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`
	reUfakzeka     = `[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reAFMoECJK     = `[一-鿿㐀-䶿\uF900-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+`
	reAFMoE        = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
	reLaguna       = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reExaoneMoE    = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+`
	reMiniCPM5     = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reLines        = `[^\n]+|[\n]+`
)

var (
	cfgDefault = preConfig{exprs: []string{`[\p{P}\$\+<=>\^~\|]+`, reGPT2, `\p{N}+`, `[0-9][0-9][0-9]`}}
	cfgLlama3  = preConfig{exprs: []string{reLlama3Alt}, ignoreMerges: true, addBOS: true}
	cfgGPT2    = preConfig{exprs: []string{reGPT2}}
	cfgStar    = preConfig{exprs: []string{`\p{N}`, reGPT2}}
	cfgQwen2   = preConfig{exprs: []string{reQwen2}, keepSpaces: true}
	cfgGPT4o   = preConfig{exprs: []string{reGPT4o}, keepSpaces: true}
	cfgBloom   = preConfig{exprs: []string{reBloom}}
	cfgDSV3    = preConfig{exprs: []string{`\p{N}{1,3}`, reKana, reDeepseekV3}, keepSpaces: true}
	cfgTinyAya = preConfig{exprs: []string{`\d{1,3}(?=(?:\d{3})*\b)`, reTinyAya}, keepSpaces: true}
	cfgBailing = preConfig{exprs: []string{reBailing}, keepSpaces: true}
	cfgGemma4  = preConfig{exprs: []string{reLines}, rawBytes: true, escapeSpaces: true}
)

// preConfigs maps every tokenizer.ggml.pre value llama.cpp accepts for BPE
// vocabularies to its configuration. "" is llama.cpp's fallback for files
// without the key.
var preConfigs = map[string]preConfig{
	"":                         cfgDefault,
	"default":                  cfgDefault,
	"llama3":                   cfgLlama3,
	"llama-v3":                 cfgLlama3,
	"llama-bpe":                cfgLlama3,
	"falcon3":                  cfgLlama3,
	"falcon-h1":                cfgLlama3,
	"pixtral":                  cfgLlama3,
	"midm-2.0":                 cfgLlama3,
	"lfm2":                     cfgLlama3,
	"jina-v5-nano":             cfgLlama3,
	"dbrx":                     {exprs: []string{reLlama3Alt}},
	"smaug-bpe":                {exprs: []string{reLlama3Alt}},
	"jais-2":                   {exprs: []string{reJais2}},
	"deepseek-llm":             {exprs: []string{`[\r\n]`, reDeepseekLLM, reDeepseekPunc, `\s+$`, reCJK, `\p{N}+`}, keepSpaces: true},
	"deepseek-coder":           {exprs: []string{`[\r\n]`, `\s?\p{L}+`, `\s?\p{P}+`, reCJK, `\p{N}`}, keepSpaces: true},
	"deepseek-v3":              cfgDSV3,
	"hunyuan-dense":            cfgDSV3,
	"joyai-llm":                cfgDSV3,
	"hy_v4":                    cfgDSV3,
	"spark2_5":                 {exprs: []string{`\p{N}{1,3}`, reKana, reSpark25, `\p{N}`}, keepSpaces: true},
	"youtu":                    {exprs: []string{reYoutuCJK, reYoutu}, keepSpaces: true, ignoreMerges: true},
	"falcon":                   {exprs: []string{`[\p{P}\$\+<=>\^~\|` + "`" + `]+`, reGPT2, `[0-9][0-9][0-9]`}},
	"mpt":                      cfgGPT2,
	"starcoder":                cfgStar,
	"refact":                   cfgStar,
	"command-r":                {exprs: []string{`\p{N}`, reGPT2}, keepSpaces: true},
	"smollm":                   {exprs: []string{`\p{N}`, reGPT2}, keepSpaces: true},
	"codeshell":                cfgStar,
	"exaone":                   cfgStar,
	"minerva-7b":               cfgStar,
	"mellum2":                  cfgStar,
	"gpt-2":                    cfgGPT2,
	"phi-2":                    cfgGPT2,
	"jina-es":                  cfgGPT2,
	"jina-de":                  cfgGPT2,
	"gigachat":                 cfgGPT2,
	"jina-v2-es":               cfgGPT2,
	"jina-v2-de":               cfgGPT2,
	"a.x-4.0":                  cfgGPT2,
	"mellum":                   cfgGPT2,
	"modern-bert":              cfgGPT2,
	"jina-v1-en":               cfgGPT2,
	"jina-v2-code":             cfgGPT2,
	"roberta-bpe":              cfgGPT2,
	"exaone4":                  cfgGPT2,
	"olmo":                     cfgGPT2,
	"jais":                     cfgGPT2,
	"trillion":                 {exprs: []string{reGPT2}, keepSpaces: true},
	"granite-docling":          {exprs: []string{reGPT2}, keepSpaces: true},
	"qwen2":                    cfgQwen2,
	"deepseek-r1-qwen":         cfgQwen2,
	"kormo":                    cfgQwen2,
	"f2llmv2":                  cfgQwen2,
	"megrez":                   {exprs: []string{reQwen2}},
	"stablelm2":                {exprs: []string{reQwen2}},
	"hunyuan":                  cfgQwen2,
	"solar-open":               cfgQwen2,
	"qwen35":                   {exprs: []string{reQwen35}, keepSpaces: true},
	"poro-chat":                {exprs: []string{reBloom}, keepSpaces: true},
	"bloom":                    cfgBloom,
	"gpt3-finnish":             cfgBloom,
	"glm4":                     {exprs: []string{reLlama3Alt}, noBOS: true},
	"chatglm-bpe":              {exprs: []string{reLlama3Alt}, noBOS: true},
	"viking":                   {exprs: []string{reBloom, `\p{N}`}, keepSpaces: true},
	"tekken":                   {exprs: []string{reTekken}, keepSpaces: true, ignoreMerges: true, addBOS: true},
	"chameleon":                {exprs: []string{`<sentinel:[0-9]+>`, `(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z`, `([\t\n]|    |  )`, `\p{N}`, "[\\p{P}!-/:-@\\[-`{-~]", reGPT2}, addBOS: true, keepSpaces: true},
	"gpt-4o":                   cfgGPT4o,
	"llama4":                   cfgGPT4o,
	"kanana2":                  cfgGPT4o,
	"talkie":                   cfgGPT4o,
	"minimax-m2":               cfgGPT4o,
	"granite-embed-multi-97m":  {exprs: []string{reGraniteMulti}, keepSpaces: true, ignoreMerges: true},
	"tiny_aya":                 cfgTinyAya,
	"cohere2moe":               cfgTinyAya,
	"superbpe":                 {exprs: []string{`\p{N}+`, `(?=(\d{3})+(?!\d))`}, keepSpaces: true},
	"bailingmoe":               cfgBailing,
	"bailingmoe2":              cfgBailing,
	"llada-moe":                cfgBailing,
	"seed-coder":               {exprs: []string{reSeedCoder}, keepSpaces: true},
	"ufakzeka":                 {exprs: []string{reUfakzeka}, keepSpaces: true},
	"grok-2":                   {exprs: []string{reQwen2}, keepSpaces: true},
	"afmoe":                    {exprs: []string{reAFMoEDigit, reAFMoECJK, reAFMoE}, keepSpaces: true},
	"laguna":                   {exprs: []string{reLines, reLaguna}, keepSpaces: true},
	"exaone-moe":               {exprs: []string{reExaoneMoE}},
	"gemma4":                   cfgGemma4,
	"granite-embed-multi-311m": cfgGemma4,
	"sarvam-moe":               {exprs: []string{reLines}, rawBytes: true, escapeSpaces: true, keepSpaces: true},
	"minicpm5":                 {exprs: []string{`\p{N}{1,3}`, reMiniCPM5}, ignoreMerges: true},
	"kimi-k2":                  {exprs: []string{reKimiK2}, keepSpaces: true},
}

// PreTokenizers lists the tokenizer.ggml.pre names this package knows.
func PreTokenizers() []string {
	names := make([]string, 0, len(preConfigs))
	for n := range preConfigs {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// compileSplitters turns expressions into splitters, using llama.cpp's
// scanners where it has one and the regex engine otherwise.
func compileSplitters(exprs []string, mode reMode) ([]splitter, error) {
	out := make([]splitter, 0, len(exprs))
	for _, e := range exprs {
		if s := customScanner(e); s != nil {
			out = append(out, s)
			continue
		}
		re, err := compileRegex(e, mode)
		if err != nil {
			return nil, err
		}
		out = append(out, re)
	}
	return out, nil
}

// splitWords applies the splitters in order and returns the pieces of text.
func splitWords(text string, splitters []splitter) []string {
	cpts := codepoints(text)
	if len(cpts) == 0 {
		return nil
	}
	offsets := []int{len(cpts)}
	for _, s := range splitters {
		offsets = s.split(cpts, offsets)
	}
	words := make([]string, 0, len(offsets))
	start := 0
	var buf []byte
	for _, n := range offsets {
		buf = buf[:0]
		for _, r := range cpts[start : start+n] {
			buf = appendRune(buf, r)
		}
		words = append(words, string(buf))
		start += n
	}
	return words
}

func lookupPre(name string) (preConfig, error) {
	c, ok := preConfigs[name]
	if !ok {
		return preConfig{}, fmt.Errorf("pre-tokenizer %q (tokenizer.ggml.pre) is not one lora knows (it knows the %d names llama.cpp used when this was written); load the model's tokenizer.json instead, or re-convert the model with a llama.cpp release that names a known pre-tokenizer", name, len(preConfigs)-1)
	}
	return c, nil
}
