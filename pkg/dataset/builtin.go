package dataset

import (
	"maps"
	"slices"
	"strings"
)

// The built-in formats follow the published prompt conventions: Stanford
// Alpaca's prompt (tatsu-lab/stanford_alpaca, Apache-2.0), Vicuna v1.1's
// system prompt (lm-sys/FastChat), ChatML, and Llama 2 chat's [INST] and
// <<SYS>> layout. They produce the same text as the format files of the same
// name in text-generation-webui (a test checks this against those files), so
// recipes written for it carry over.
const (
	alpacaPreamble      = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
	alpacaInputPreamble = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request."
	vicunaSystem        = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
)

type builtinTemplate struct{ key, text string }

type builtinFormat struct {
	response  string
	templates []builtinTemplate
}

func chatml(user string) string {
	return "<|im_start|>system\n<|im_end|>\n" +
		"<|im_start|>user\n" + user + "<|im_end|>\n" +
		"<|im_start|>assistant\n%output%<|im_end|>"
}

func llama2(system string) string {
	return "<s>[INST] <<SYS>>\n" + system + "\n<</SYS>>\n\n%userprompt%[/INST] %modelanswer%</s>"
}

var builtins = map[string]builtinFormat{
	"alpaca": {DefaultResponse, []builtinTemplate{
		{"instruction,output", alpacaPreamble + "\n\n### Instruction:\n%instruction%\n\n### Response:\n%output%"},
		{"instruction,input,output", alpacaInputPreamble + "\n\n### Instruction:\n%instruction%\n\n### Input:\n%input%\n\n### Response:\n%output%"},
	}},
	"alpaca-chatbot": {DefaultResponse, []builtinTemplate{
		{"instruction,output", "User: %instruction%\nAssistant: %output%"},
		{"instruction,input,output", "User: %instruction%: %input%\nAssistant: %output%"},
	}},
	"vicuna": {DefaultResponse, []builtinTemplate{
		{"instruction,output", vicunaSystem + "\n\nUSER: %instruction%\n\nASSISTANT: %output%"},
	}},
	"chatml": {DefaultResponse, []builtinTemplate{
		{"instruction,output", chatml("%instruction%")},
		{"instruction,input,output", chatml("%instruction%: %input%")},
	}},
	"llama2-chat": {"modelanswer", []builtinTemplate{
		{"modelanswer,userprompt,systemprompt", llama2("%systemprompt%")},
		{"modelanswer,userprompt", llama2("")},
	}},
}

// BuiltinNames returns the names of the built-in formats, sorted.
func BuiltinNames() []string { return slices.Sorted(maps.Keys(builtins)) }

// Builtin returns the built-in format called name.
func Builtin(name string) (*Format, bool) {
	b, ok := builtins[name]
	if !ok {
		return nil, false
	}
	f := &Format{Name: name, Response: b.response, byKey: map[string]*Template{}}
	for _, bt := range b.templates {
		fields := strings.Split(bt.key, ",")
		slices.Sort(fields)
		t := &Template{Key: bt.key, Fields: fields, Text: bt.text}
		f.Templates = append(f.Templates, t)
		f.byKey[strings.Join(fields, ",")] = t
	}
	return f, true
}
