package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/spf13/cobra"
)

func init() { register("tokenize", newTokenizeCmd) }

func newTokenizeCmd() *cobra.Command {
	var (
		model        string
		noBOS, eos   bool
		asJSON       bool
		decode       bool
		parseSpecial bool
		pieces       bool
	)
	cmd := &cobra.Command{
		Use:   "tokenize --model FILE [flags] TEXT|-",
		Short: "Turn text into token ids, or ids back into text",
		Long: `tokenize prints the token ids of TEXT as the model's tokenizer produces them
(the same ids llama.cpp gives). "-" reads the whole of standard input as the
text. The model is a GGUF file, a Hugging Face tokenizer.json, or a directory
holding one.

BOS is added when the model asks for it (--no-bos leaves it out); --eos adds
EOS. Control tokens written in the text, like "<s>", stay plain text unless
--special is given.

With --decode the arguments (or standard input, with "-") are token ids,
separated by spaces or commas or written as a JSON array, and the decoded
text is printed.`,
		Example: `  lora tokenize --model stories260K.gguf "Once upon a time"
  lora tokenize --model stories260K.gguf --json --no-bos - < prompt.txt
  lora tokenize --model ./llama-hf/ --pieces "Hello world"
  lora tokenize --model stories260K.gguf --decode 1 403 407 261`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return Usagef("tokenize needs --model FILE (a GGUF file, a tokenizer.json, or a directory holding one)")
			}
			s := ioFrom(cmd)
			input, err := tokenizeInput(s.in, args)
			if err != nil {
				return err
			}
			tok, err := tokenizer.Load(model)
			if err != nil {
				return err
			}
			if decode {
				ids, err := parseIDs(input, tok.VocabSize())
				if err != nil {
					return err
				}
				text := tok.DecodeWith(ids, tokenizer.DecodeOptions{Special: parseSpecial})
				if asJSON {
					return json.NewEncoder(s.out).Encode(text)
				}
				_, err = io.WriteString(s.out, text+"\n")
				return err
			}
			ids := tok.Encode(input, tokenizer.EncodeOptions{
				AddBOS:       tok.AddBOS() && !noBOS,
				AddEOS:       eos || tok.AddEOS(),
				ParseSpecial: parseSpecial,
			})
			switch {
			case pieces && asJSON:
				type piece struct {
					ID   int32  `json:"id"`
					Text string `json:"text"`
				}
				list := make([]piece, len(ids))
				for i, id := range ids {
					list[i] = piece{id, tok.TokenText(id)}
				}
				return json.NewEncoder(s.out).Encode(list)
			case pieces:
				for _, id := range ids {
					fmt.Fprintf(s.out, "%6d %q\n", id, tok.TokenText(id))
				}
				return nil
			case asJSON:
				if ids == nil {
					ids = []int32{}
				}
				return json.NewEncoder(s.out).Encode(ids)
			}
			strs := make([]string, len(ids))
			for i, id := range ids {
				strs[i] = strconv.Itoa(int(id))
			}
			_, err = fmt.Fprintln(s.out, strings.Join(strs, " "))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&model, "model", "m", "", "GGUF file, tokenizer.json, or Hugging Face model directory")
	f.BoolVar(&noBOS, "no-bos", false, "do not add the BOS token even when the model asks for it")
	f.BoolVar(&eos, "eos", false, "add the EOS token")
	f.BoolVar(&asJSON, "json", false, "print a JSON array of ids (with --decode: a JSON string)")
	f.BoolVar(&decode, "decode", false, "read token ids and print their text")
	f.BoolVar(&parseSpecial, "special", false, "match control tokens written in the text (with --decode: print them)")
	f.BoolVar(&pieces, "pieces", false, "print each id with the text it stands for")
	return cmd
}

// tokenizeInput joins the arguments with spaces, or reads stdin for "-".
func tokenizeInput(in io.Reader, args []string) (string, error) {
	if len(args) == 1 && args[0] == "-" {
		if in == nil {
			return "", Usagef("\"-\" reads standard input, but there is none")
		}
		data, err := io.ReadAll(in)
		if err != nil {
			return "", fmt.Errorf("read standard input: %w", err)
		}
		return string(data), nil
	}
	return strings.Join(args, " "), nil
}

// parseIDs reads ids written as a JSON array or separated by spaces/commas.
func parseIDs(s string, vocab int) ([]int32, error) {
	s = strings.TrimSpace(s)
	var ids []int32
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, Usagef("--decode input is not a JSON array of integers: %v", err)
		}
	} else {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return nil, Usagef("--decode: %q is not a token id (want integers separated by spaces or commas, or a JSON array)", f)
			}
			ids = append(ids, int32(n))
		}
	}
	for _, id := range ids {
		if id < 0 || int(id) >= vocab {
			return nil, Usagef("--decode: token id %d is outside the vocabulary (0..%d)", id, vocab-1)
		}
	}
	return ids, nil
}
