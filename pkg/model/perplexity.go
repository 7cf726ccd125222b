package model

import (
	"context"
	"fmt"
	"math"
)

// PerplexityOptions set the sliding window.
type PerplexityOptions struct {
	Ctx    int // window length in tokens
	Stride int // distance between window starts, 1..Ctx (0 = Ctx)
	Batch  int // windows per forward pass (0 = 4)
	// Progress, when set, is called after each batch with windows done and total.
	Progress func(done, total int)
}

// PerplexityResult is the outcome of a sliding-window evaluation.
type PerplexityResult struct {
	// Perplexity is token-weighted: exp(total NLL / Tokens).
	Perplexity float64 `json:"perplexity"`
	// Tokens is the number of tokens scored.
	Tokens int `json:"tokens"`
	// NLL is the total negative log-likelihood in nats.
	NLL float64 `json:"nll"`
	// WindowMean is the unweighted mean of the per-window perplexities.
	WindowMean float64 `json:"perplexity_window_mean"`
	Windows    int     `json:"windows"`
	Ctx        int     `json:"ctx"`
	Stride     int     `json:"stride"`
}

// Window is one slice of the token stream and the part of it that is scored.
type Window struct {
	Begin, End int // ids[Begin:End] is fed to the model
	From       int // targets ids[From:End] are scored (From >= Begin+1)
}

// Windows lays out the sliding windows over n tokens: a window of ctx tokens
// starts every stride tokens; each scores the targets not scored by an earlier
// one (a token is scored from the logits of the position before it, so the
// first token of a window is never its target). The last window ends at n.
func Windows(n, ctx, stride int) []Window {
	var ws []Window
	prevEnd := 0
	for begin := 0; begin < n; begin += stride {
		end := min(begin+ctx, n)
		ws = append(ws, Window{Begin: begin, End: end, From: max(prevEnd, begin+1)})
		prevEnd = end
		if end == n {
			break
		}
	}
	return ws
}

// Perplexity evaluates the model on ids (tokenized once, with BOS) with a
// sliding window, exactly as PerplexityOptions describes.
func (m *Model) Perplexity(ctx context.Context, ids []int32, o PerplexityOptions) (PerplexityResult, error) {
	if o.Stride == 0 {
		o.Stride = o.Ctx
	}
	if o.Batch <= 0 {
		o.Batch = 4
	}
	res := PerplexityResult{Ctx: o.Ctx, Stride: o.Stride}
	switch {
	case o.Ctx < 2:
		return res, fmt.Errorf("perplexity: context %d must be at least 2 tokens", o.Ctx)
	case o.Stride < 1 || o.Stride > o.Ctx:
		return res, fmt.Errorf("perplexity: stride %d must be between 1 and the context %d", o.Stride, o.Ctx)
	case len(ids) < 2:
		return res, fmt.Errorf("perplexity: the text has %d tokens; at least 2 are needed", len(ids))
	}
	if cl := m.Config.ContextLen; cl > 0 && o.Ctx > cl {
		return res, fmt.Errorf("perplexity: context %d exceeds the model's %d: lower --ctx", o.Ctx, cl)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= m.Config.Vocab {
			return res, fmt.Errorf("perplexity: token id %d outside the vocabulary of %d", id, m.Config.Vocab)
		}
	}
	ws := Windows(len(ids), o.Ctx, o.Stride)
	be := m.be
	acts := map[[2]int]*Activations{}
	defer func() {
		for _, a := range acts {
			a.Free()
		}
	}()
	sumWindowPPL := 0.0
	for i := 0; i < len(ws); {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// Group consecutive windows of equal length.
		seq := ws[i].End - ws[i].Begin
		j := i
		for j < len(ws) && j-i < o.Batch && ws[j].End-ws[j].Begin == seq {
			j++
		}
		batch := ws[i:j]
		key := [2]int{len(batch), seq}
		a := acts[key]
		if a == nil {
			var err error
			if a, err = m.NewActivations(len(batch), seq, false); err != nil {
				return res, err
			}
			acts[key] = a
		}
		in := make([]int32, 0, len(batch)*seq)
		labels := make([]int32, 0, len(batch)*seq)
		for _, w := range batch {
			in = append(in, ids[w.Begin:w.End]...)
			for p := w.Begin; p < w.End; p++ {
				if p+1 >= w.From && p+1 < w.End {
					labels = append(labels, ids[p+1])
				} else {
					labels = append(labels, IgnoreLabel)
				}
			}
		}
		if err := be.Write(a.IDs, in); err != nil {
			return res, err
		}
		if err := be.Write(a.Labels, labels); err != nil {
			return res, err
		}
		if err := m.Forward(a, nil); err != nil {
			return res, fmt.Errorf("perplexity: %w", err)
		}
		if err := m.Loss(a); err != nil {
			return res, fmt.Errorf("perplexity: %w", err)
		}
		loss := make([]float32, a.Loss.Len())
		if err := be.Read(a.Loss, loss); err != nil {
			return res, err
		}
		for b := range batch {
			nll, cnt := 0.0, 0
			for p := 0; p < seq; p++ {
				if labels[b*seq+p] != IgnoreLabel {
					nll += float64(loss[b*seq+p])
					cnt++
				}
			}
			if cnt == 0 {
				continue // a one-token tail window has no target
			}
			res.NLL += nll
			res.Tokens += cnt
			res.Windows++
			sumWindowPPL += math.Exp(nll / float64(cnt))
		}
		i = j
		if o.Progress != nil {
			o.Progress(i, len(ws))
		}
	}
	res.Perplexity = math.Exp(res.NLL / float64(res.Tokens))
	res.WindowMean = sumWindowPPL / float64(res.Windows)
	return res, nil
}
