package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Every shipped recipe lints clean and runs end to end, offline, on the real
// stories260K and the real datasets, from a cache seeded by lora cache
// import (as the README's demo does). continue.yaml starts from the adapter
// alpaca-chat.yaml made.
func TestShippedRecipesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains every shipped recipe")
	}
	shared := sharedData()
	if shared == "" {
		t.Skip("../shared/data is absent")
	}
	root := filepath.Join("..", "..")
	recipes, err := filepath.Glob(filepath.Join(root, "recipes", "*.yaml"))
	if err != nil || len(recipes) < 4 {
		t.Fatalf("shipped recipes: %v %v", recipes, err)
	}
	tmp := t.TempDir()
	t.Setenv("LORA_CACHE", filepath.Join(tmp, "cache"))
	t.Setenv("LORA_OFFLINE", "1")
	runs := filepath.Join(tmp, "runs")
	_, errs, code := runLora(t, "cache", "import",
		filepath.Join(shared, "models", "stories260K.gguf"),
		filepath.Join(shared, "datasets", "alpaca", "alpaca_5000.json"),
		filepath.Join(shared, "datasets", "tinyshakespeare", "input.txt"))
	if code != 0 {
		t.Fatalf("cache import: exit %d: %s", code, errs)
	}
	// alpaca-chat first: continue.yaml starts from its adapter.
	sort.Slice(recipes, func(i, j int) bool {
		return strings.Contains(recipes[i], "alpaca-chat") && !strings.Contains(recipes[j], "alpaca-chat")
	})
	var adapterDir string
	for _, r := range recipes {
		name := strings.TrimSuffix(filepath.Base(r), ".yaml")
		t.Run(name, func(t *testing.T) {
			out, errs, code := runLora(t, "lint", r)
			if code != 0 {
				t.Fatalf("lint: exit %d\n%s%s", code, out, errs)
			}
			args := []string{"run", r, "--runs", runs}
			if name == "continue" {
				if adapterDir == "" {
					t.Skip("alpaca-chat did not run")
				}
				args = append(args, "--set", "stages.more.train.init_adapter="+adapterDir)
			}
			out, errs, code = runLora(t, args...)
			if code != 0 {
				t.Fatalf("run: exit %d\n%s", code, errs)
			}
			runDir := strings.TrimSpace(out)
			var lk struct {
				Status string `json:"status"`
			}
			b, err := os.ReadFile(filepath.Join(runDir, "lora.lock"))
			if err != nil || json.Unmarshal(b, &lk) != nil || lk.Status != "ok" {
				t.Fatalf("lock status %q (%v)", lk.Status, err)
			}
			trains, _ := filepath.Glob(filepath.Join(runDir, "stages", "*", "adapter", "adapter_model.safetensors"))
			if len(trains) == 0 {
				t.Fatalf("no adapter in %s", runDir)
			}
			for _, f := range []string{"adapter.gguf", "loss.png"} {
				if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(trains[0])), f)); err != nil {
					t.Errorf("train stage lacks %s", f)
				}
			}
			if reports, _ := filepath.Glob(filepath.Join(runDir, "stages", "*", "report.md")); len(reports) == 0 {
				t.Errorf("no evaluation report in %s", runDir)
			}
			if name == "alpaca-chat" {
				adapterDir = filepath.Dir(trains[0])
			}
			t.Logf("%s: %s", name, lastLine(errs))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
