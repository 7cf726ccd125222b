package recipe_test

import (
	"fmt"
	"os"

	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/recipe"
)

func ExampleParse() {
	src := []byte(`version: 1
name: demo
model:
  source: https://example.com/stories260K.gguf
  sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
stages:
  data:
    fetch: {source: https://example.com/alpaca.json, sha256: fc1add24c93c9fbbe585a64a6c9bf6165eb110225f4470efbff382a913558ec0}
  prompts:
    format: {input: data, format: alpaca-chatbot}
  train:
    needs: [prompts]
    train:
      max_steps: 60
      stop_when: los < 1.0
`)
	r, ds := recipe.Parse("demo.yaml", src, []string{"stages.train.train.lora.rank=16"})
	diag.Text{Sources: map[string][]byte{"demo.yaml": src}}.Write(os.Stdout, ds)
	fmt.Println("rank:", r.Stage("train").Train.LoRA.Rank, "input:", r.Stage("train").Train.Input)
	// Output:
	// demo.yaml:15:18: error: unknown name los in stop_when
	//  15 |       stop_when: los < 1.0
	//     |                  ^^^
	// hint: did you mean loss? known names: loss, step, epoch, lr, grad_norm, tokens, eval_loss, eval_perplexity
	// rank: 16 input: prompts
}

func ExampleCompileGate() {
	g, err := recipe.CompileGate(recipe.GateStopWhen, "loss < 1.0 && step >= 100")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range []recipe.TrainEnv{{Loss: 1.4, Step: 120}, {Loss: 0.9, Step: 120}} {
		stop, _ := g.Eval(m)
		fmt.Printf("loss %.1f step %d: stop=%v\n", m.Loss, m.Step, stop)
	}
	// Output:
	// loss 1.4 step 120: stop=false
	// loss 0.9 step 120: stop=true
}
