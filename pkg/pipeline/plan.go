package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/lora-dev/lora/pkg/fetch"
	"github.com/lora-dev/lora/pkg/recipe"
)

// Plan statuses.
const (
	PlanCached  = "cached"
	PlanRun     = "will run"
	PlanUnknown = "will run" // key not computable before fetching
)

// PlanStage is one stage of a plan.
type PlanStage struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Needs   []string `json:"needs,omitempty"`
	When    string   `json:"when,omitempty"`
	Status  string   `json:"status"`           // cached or will run
	Reason  string   `json:"reason,omitempty"` // why it runs
	Key     string   `json:"key,omitempty"`    // "" when it depends on content not yet fetched
	Details []string `json:"details,omitempty"`
}

// PlanResult is what `lora plan` shows.
type PlanResult struct {
	Recipe string      `json:"recipe"`
	Name   string      `json:"name"`
	Model  string      `json:"model"` // model status line
	Stages []PlanStage `json:"stages"`
}

// Plan computes every stage's key without running anything or touching the
// network, and says which stages are cached and why the others would run.
func Plan(ctx context.Context, r *recipe.Recipe, opt Options) (*PlanResult, error) {
	opt.Offline = true
	x, err := newRunner(r, opt)
	if err != nil {
		return nil, err
	}
	x.prev = previousLock(x.opt.RunsDir, r.Name, "")
	pr := &PlanResult{Recipe: r.Path, Name: r.Name}

	// The model's content hash: the pin, or the local file's hash, or what
	// the store remembers of the source.
	modelSum, modelPath := "", ""
	src := r.Model.Source
	switch {
	case src == "":
		pr.Model = "no model"
	case fetch.IsLocal(src):
		p := fetch.LocalPath(src, r.Dir())
		if sum, err := hashLocal(p); err == nil {
			modelSum, modelPath = sum, p
			pr.Model = fmt.Sprintf("%s (local, sha256 %s)", src, short(sum))
		} else {
			pr.Model = fmt.Sprintf("%s: %v", src, err)
		}
	default:
		modelSum = x.pin(src, r.Model.SHA256)
		if modelSum == "" {
			if rec, ok := x.opt.Store.LookupSource(src); ok {
				modelSum = rec.SHA256
			}
		}
		if p, ok := x.opt.Store.Blob(modelSum); ok {
			modelPath = p
			pr.Model = fmt.Sprintf("%s (in cache, sha256 %s)", src, short(modelSum))
		} else if modelSum != "" {
			pr.Model = fmt.Sprintf("%s (to download, sha256 %s)", src, short(modelSum))
		} else {
			pr.Model = fmt.Sprintf("%s (to download; not pinned)", src)
		}
	}

	for _, s := range x.order {
		ps := PlanStage{Name: s.Name, Kind: s.Kind, Needs: s.Inputs(), When: s.When.Src}
		k, ok := Lookup(s.Kind)
		if !ok {
			ps.Status, ps.Reason = PlanRun, fmt.Sprintf("no stage kind %q is built into this lora", s.Kind)
			pr.Stages = append(pr.Stages, ps)
			continue
		}
		unknown := ""
		inputKeys := map[string]string{}
		for _, in := range s.Inputs() {
			key := x.keys[in]
			if key == "" {
				unknown = "input " + in + " is not known yet"
			}
			inputKeys[in] = key
		}
		content := ""
		if s.Kind == recipe.KindFetch {
			content, unknown = x.planContent(s, unknown)
		}
		if usesOf(s.Kind, k).Model && modelSum == "" && unknown == "" {
			unknown = "the model is not pinned and not fetched yet"
		}
		m, err := x.material(s, k, inputKeys, modelSum, content)
		if err != nil {
			ps.Status, ps.Reason = PlanRun, err.Error()
			pr.Stages = append(pr.Stages, ps)
			continue
		}
		switch {
		case unknown != "":
			ps.Status, ps.Reason = PlanUnknown, unknown
		default:
			ps.Key = m.Key()
			x.keys[s.Name] = ps.Key
			if p, ok := x.opt.Store.Stage(ps.Key); ok && !contains(opt.Force, s.Name) && !contains(opt.Fresh, s.Kind) {
				ps.Status = PlanCached
				x.outs[s.Name] = p
			} else {
				ps.Status = PlanRun
				switch {
				case contains(opt.Force, s.Name):
					ps.Reason = "--force"
				case contains(opt.Fresh, s.Kind):
					ps.Reason = "rerun"
				default:
					ps.Reason = x.reason(s, m)
				}
			}
		}
		if pl, ok := k.(Planner); ok {
			inputs := map[string]string{}
			for _, in := range s.Inputs() {
				if p, ok := x.outs[in]; ok {
					inputs[in] = p
				}
			}
			spec, _, _, _ := x.device(s)
			d, err := pl.Plan(ctx, &PlanContext{Recipe: r, Stage: s, Inputs: inputs, Model: modelPath, Quantize: quantizeOf(r, s), Device: spec, Seed: r.Seed})
			if err != nil {
				ps.Details = append(ps.Details, "plan: "+err.Error())
			}
			ps.Details = append(ps.Details, d...)
		}
		pr.Stages = append(pr.Stages, ps)
	}
	return pr, nil
}

// planContent predicts a fetch stage's content hash without the network.
func (x *runner) planContent(s *recipe.Stage, unknown string) (string, string) {
	src := s.Fetch.Source
	if fetch.IsLocal(src) {
		sum, err := hashLocal(fetch.LocalPath(src, x.r.Dir()))
		if err != nil {
			return "", fmt.Sprintf("cannot read %s: %v", src, err)
		}
		return sum, unknown
	}
	if pin := x.pin(src, s.Fetch.SHA256); pin != "" {
		return pin, unknown
	}
	if rec, ok := x.opt.Store.LookupSource(src); ok {
		return rec.SHA256, unknown
	}
	return "", "source " + src + " is not pinned and was never fetched"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteText renders the plan: the stage graph in run order with needs, the
// status and reason of each stage, and kind details.
func (p *PlanResult) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "recipe %s (%s)\n", p.Name, p.Recipe)
	fmt.Fprintf(&b, "model  %s\n\n", p.Model)
	width := 0
	for _, s := range p.Stages {
		width = max(width, len(s.Name))
	}
	for i, s := range p.Stages {
		branch := "├─"
		cont := "│ "
		if i == len(p.Stages)-1 {
			branch, cont = "└─", "  "
		}
		needs := ""
		if len(s.Needs) > 0 {
			needs = " ← " + strings.Join(s.Needs, ", ")
		}
		fmt.Fprintf(&b, "%s %-*s  %-8s %s%s\n", branch, width, s.Name, s.Kind, s.Status, needs)
		if s.Reason != "" && s.Status != PlanCached {
			fmt.Fprintf(&b, "%s %*s  why: %s\n", cont, width, "", s.Reason)
		}
		if s.When != "" {
			fmt.Fprintf(&b, "%s %*s  when: %s\n", cont, width, "", s.When)
		}
		for _, d := range s.Details {
			fmt.Fprintf(&b, "%s %*s  %s\n", cont, width, "", d)
		}
	}
	cached, run := 0, 0
	for _, s := range p.Stages {
		if s.Status == PlanCached {
			cached++
		} else {
			run++
		}
	}
	fmt.Fprintf(&b, "\n%d cached, %d to run\n", cached, run)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON renders the plan as JSON.
func (p *PlanResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
