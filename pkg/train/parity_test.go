package train

import (
	"math"
	"testing"

	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/backend/vulkan"
	"github.com/lora-dev/lora/pkg/model"
)

// The Vulkan and Go backends give the same loss curve, within float32
// reordering tolerance, over several optimizer steps of real training
// (dropout, accumulation, clipping, a q4_0 base).
func TestVulkanLossCurveMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("lavapipe is slow")
	}
	vk, err := vulkan.New(vulkan.Options{Index: -1})
	if err != nil {
		t.Skipf("no Vulkan device: %v", err)
	}
	defer vk.Close()
	path := sharedData(t, "models/stories260K.gguf")
	for _, quant := range []string{"none", "q4_0"} {
		t.Run(quant, func(t *testing.T) {
			mr, err := model.Load(path, ref.New(), model.LoadOptions{Quantize: quant})
			if err != nil {
				t.Fatal(err)
			}
			defer mr.Close()
			mv, err := model.Load(path, vk, model.LoadOptions{Quantize: quant})
			if err != nil {
				t.Fatal(err)
			}
			defer mv.Close()
			o := baseOpts()
			o.Dropout = 0.1
			o.MaxSteps = 4
			o.Targets = []model.Module{model.Q, model.K, model.V, model.O, model.Gate, model.Up, model.Down}
			data := patterned(8, 16, 3)
			want, _ := runSteps(t, mr, o, data)
			got, _ := runSteps(t, mv, o, data)
			for i := range want {
				rel := math.Abs(got[i].Loss-want[i].Loss) / want[i].Loss
				t.Logf("step %d: cpu loss %.6f, vulkan %.6f (rel %.2g); grad norm %.5f vs %.5f", i+1, want[i].Loss, got[i].Loss, rel, want[i].GradNorm, got[i].GradNorm)
				if rel > 1e-3 {
					t.Errorf("step %d: vulkan loss %.6f vs cpu %.6f", i+1, got[i].Loss, want[i].Loss)
				}
				if g := math.Abs(got[i].GradNorm-want[i].GradNorm) / want[i].GradNorm; g > 1e-2 {
					t.Errorf("step %d: vulkan grad norm %.6f vs cpu %.6f", i+1, got[i].GradNorm, want[i].GradNorm)
				}
			}
		})
	}
}
