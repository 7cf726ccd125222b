package train

import (
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/backend/vulkan"
	"github.com/lora-dev/lora/pkg/model"
)

// BenchmarkTrainStep times one optimizer step (forward, loss, backward and
// AdamW over rank-8 adapters on every linear) of stories260K, batch 4 × 128
// tokens, per backend and base type; it reports trained tokens per second.
func BenchmarkTrainStep(b *testing.B) {
	path := sharedData(b, "models/stories260K.gguf")
	backends := map[string]func() (backend.Backend, error){
		"cpu":    func() (backend.Backend, error) { return ref.New(), nil },
		"vulkan": func() (backend.Backend, error) { return vulkan.New(vulkan.Options{Index: -1}) },
	}
	for _, name := range []string{"cpu", "vulkan"} {
		for _, quant := range []string{"none", "q8_0", "q4_0", "nf4"} {
			b.Run(name+"/"+quant, func(b *testing.B) {
				be, err := backends[name]()
				if err != nil {
					b.Skipf("%s: %v", name, err)
				}
				defer be.Close()
				m, err := model.Load(path, be, model.LoadOptions{Quantize: quant})
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				o := Options{Rank: 8, Alpha: 16, Dropout: 0.05, Targets: []model.Module{model.Q, model.K, model.V, model.O, model.Gate, model.Up, model.Down},
					LR: 1e-3, Schedule: Schedule{Name: "constant"}, MaxGradNorm: 1, BatchSize: 4, MicroBatch: 4, CutoffLen: 128,
					MaxSteps: 1 << 20, Seed: 1, Shuffle: true}
				data := patterned(16, 128, 1)
				t, err := New(m, o, len(data), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer t.Close()
				if _, err := t.TrainStep(data); err != nil { // warm up
					b.Fatal(err)
				}
				b.ResetTimer()
				tokens := 0
				for i := 0; i < b.N; i++ {
					mt, err := t.TrainStep(data)
					if err != nil {
						b.Fatal(err)
					}
					tokens += mt.StepTok
				}
				b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}
