package backend

import "fmt"

// Matrix views t as [rows, cols] over its last dimension, as every
// operation does.
func Matrix(t Tensor) (rows, cols int) {
	s := t.Shape()
	if len(s) == 0 {
		return 1, 1
	}
	cols = s[len(s)-1]
	if cols == 0 {
		return 0, 0
	}
	return t.Len() / cols, cols
}

// CheckAttention validates the parameters of an attention operation and the
// shapes of its tensors, named by names (q, out, dq, dout: [Batch*QLen,
// Heads*HeadDim]; k, v, dk, dv: [Batch*KVCap, KVHeads*HeadDim]; probs:
// Batch*Heads*QLen*KVLen elements). Nil tensors are skipped: the backend
// reports a missing tensor when it resolves it. Every backend calls this, so
// they refuse the same calls with the same messages.
func CheckAttention(op string, a Attention, names []string, ts ...Tensor) error {
	if a.Batch <= 0 || a.QLen <= 0 || a.KVLen <= 0 || a.KVCap < a.KVLen || a.Heads <= 0 || a.KVHeads <= 0 || a.HeadDim <= 0 || a.QOffset < 0 {
		return fmt.Errorf("%s: parameters %+v: want positive sizes, KVLen <= KVCap and QOffset >= 0", op, a)
	}
	if a.Heads%a.KVHeads != 0 {
		return fmt.Errorf("%s: %d heads are not a multiple of %d kv heads", op, a.Heads, a.KVHeads)
	}
	qWidth, kvWidth := a.Heads*a.HeadDim, a.KVHeads*a.HeadDim
	qRows, kvRows := a.Batch*a.QLen, a.Batch*a.KVCap
	for i, t := range ts {
		if t == nil {
			continue
		}
		rows, cols := Matrix(t)
		switch names[i] {
		case "probs":
			if want := a.Batch * a.Heads * a.QLen * a.KVLen; t.Len() != want {
				return fmt.Errorf("%s: probs %v: want %d elements [Batch %d, Heads %d, QLen %d, KVLen %d]", op, t.Shape(), want, a.Batch, a.Heads, a.QLen, a.KVLen)
			}
		case "k", "v", "dk", "dv":
			if cols != kvWidth || rows != kvRows {
				return fmt.Errorf("%s: %s %v: want [Batch*KVCap, KVHeads*HeadDim] = [%d, %d]", op, names[i], t.Shape(), kvRows, kvWidth)
			}
		default:
			if cols != qWidth || rows != qRows {
				return fmt.Errorf("%s: %s %v: want [Batch*QLen, Heads*HeadDim] = [%d, %d]", op, names[i], t.Shape(), qRows, qWidth)
			}
		}
	}
	return nil
}
