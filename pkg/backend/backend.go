// Package backend defines the tensor operations the model is written in; backends run them on a device.
//
// The model (pkg/model) is written once against Backend. Two implementations exist:
// pkg/backend/ref, a plain-Go float32 reference used as the test oracle and as the
// CPU fallback, and pkg/backend/vulkan, SPIR-V compute shaders through Vulkan.
// Train, eval and generate get a Backend from pkg/device and never import a concrete one.
//
// Conventions shared by every operation:
//   - Tensors are row-major; the last dimension is contiguous. Activations are F32,
//     token ids and labels are I32. Only weights (the "W" arguments) may be quantized.
//   - A quantized tensor [rows, cols] stores each row as cols/blockSize GGUF blocks
//     (Q8_0, Q4_0: 32 values per block, byte layout exactly as ggml; NF4: 64 values per
//     block, see pkg/quant). cols must be a multiple of the block size.
//   - Operations are enqueued; results are only guaranteed visible after Read (which
//     synchronises) or Sync. Operations on one backend run in call order.
//   - Every reduction happens in a fixed order (no float atomics), so the same inputs
//     give bit-identical outputs run to run on the same device.
//   - Shapes are checked; a mismatch returns an error that names the operation and shapes.
//   - Output arguments come first. "accumulate" means out += result instead of out = result.
package backend

import "fmt"

// DType is a tensor element type.
type DType uint8

// Element types. F32 and I32 are the working types; F16, Q8_0, Q4_0 and NF4 are
// storage types for frozen weights (read by Embed, MatMul and MatMulDX).
const (
	F32 DType = iota
	I32
	F16
	Q8_0
	Q4_0
	NF4
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case I32:
		return "i32"
	case F16:
		return "f16"
	case Q8_0:
		return "q8_0"
	case Q4_0:
		return "q4_0"
	case NF4:
		return "nf4"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// BlockSize is the number of values per quantization block (1 for plain types).
func (d DType) BlockSize() int {
	switch d {
	case Q8_0, Q4_0:
		return 32
	case NF4:
		return 64
	}
	return 1
}

// BlockBytes is the number of bytes one block occupies.
func (d DType) BlockBytes() int {
	switch d {
	case F32, I32:
		return 4
	case F16:
		return 2
	case Q8_0:
		return 2 + 32 // f16 scale + 32 int8
	case Q4_0:
		return 2 + 16 // f16 scale + 32 nibbles
	case NF4:
		return 4 + 32 // f32 absmax + 64 nibbles
	}
	return 0
}

// RowBytes is the storage size of one row of n values.
func (d DType) RowBytes(n int) int { return n / d.BlockSize() * d.BlockBytes() }

// Tensor is a handle to device memory owned by a backend.
type Tensor interface {
	DType() DType
	Shape() []int
	// Len is the number of elements (product of Shape).
	Len() int
}

// Info describes a backend and its device.
type Info struct {
	Name   string // "cpu" or "vulkan"
	Device string // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
	Kind   string // "cpu", "discrete", "integrated", "virtual", "other"
	// MemoryBytes is the device memory available to lora (0 when unknown).
	MemoryBytes uint64
}

// RoPELayout selects how the dimensions of a head are paired for rotation.
type RoPELayout uint8

const (
	// RoPENormal pairs adjacent dimensions (2i, 2i+1): llama.cpp's layout, used with
	// GGUF llama files (whose Q/K rows are permuted for it).
	RoPENormal RoPELayout = iota
	// RoPENeoX pairs dimension i with i+d/2: the Hugging Face layout (and qwen2 in GGUF).
	RoPENeoX
)

// RoPE parameters. Positions come from a tensor so that a recorded Program can run
// at any position.
type RoPE struct {
	Heads, HeadDim int
	Dims           int // number of leading dims of each head that rotate (rope dimension count)
	Theta          float32
	Layout         RoPELayout
}

// Attention describes grouped-query causal attention over a batch.
// q is [Batch*QLen, Heads*HeadDim]; k and v are [Batch*KVCap, KVHeads*HeadDim] where
// the first KVLen rows of each sequence's KVCap rows are valid; out is like q.
// Query i of a sequence may attend to key j iff j <= i + QOffset (causal).
// Probs, when non-nil, receives the softmax probabilities [Batch, Heads, QLen, KVLen]
// (needed by the backward pass). Scale multiplies q·k (usually 1/sqrt(HeadDim)).
type Attention struct {
	Batch, QLen, KVLen, KVCap int
	Heads, KVHeads, HeadDim   int
	QOffset                   int
	Scale                     float32
}

// AdamW hyper-parameters that change per step live in a small F32 tensor (see
// AdamWScalars) so that a recorded step can be replayed without re-recording.
// Layout of the scalars tensor (F32, length AdamWScalarsLen):
//
//	[0] lr            learning rate for this step
//	[1] beta1
//	[2] beta2
//	[3] eps
//	[4] weight_decay  decoupled: p -= lr*wd*p
//	[5] bc1           1 - beta1^t
//	[6] bc2           1 - beta2^t
//	[7] max_norm      grad-norm clip threshold (<= 0: no clipping)
//
// The gradient used is g*clip where clip = min(1, max_norm/(sqrt(sumsq)+1e-6)) and
// sumsq is element 0 of the sumsq tensor given to AdamW (see SumSquares).
const AdamWScalarsLen = 8

// Backend runs tensor operations on one device.
type Backend interface {
	Info() Info
	Close() error

	// Alloc returns a zero-filled F32 or I32 tensor.
	Alloc(dt DType, shape ...int) (Tensor, error)
	// FromBytes uploads a tensor whose raw bytes are in dt's storage layout
	// (little endian; GGUF block layout for quantized types).
	FromBytes(dt DType, shape []int, raw []byte) (Tensor, error)
	// Write copies host data into t: []float32 for F32, []int32 for I32; len must be t.Len().
	Write(t Tensor, data any) error
	// Read copies t (F32 or I32) to host memory (dst []float32 or []int32), after
	// finishing all enqueued work.
	Read(t Tensor, dst any) error
	// Free releases t. Using t afterwards is an error.
	Free(t Tensor)
	// Sync waits until all enqueued work is done and reports the first deferred error.
	Sync() error

	// Record captures the operations fn enqueues into a replayable Program. Inputs
	// that change between replays (token ids, labels, per-step scalars) must be
	// written into tensors with Write before Program.Run; the tensors used by fn
	// must stay allocated while the Program lives. fn may only enqueue
	// operations: Alloc, FromBytes, Write, Read, Free and Sync inside fn are
	// errors (or, on the reference backend, run again on every replay). Record
	// itself does not run the operations: call Run.
	Record(fn func() error) (Program, error)

	// ---- elementwise and copies ----

	// Fill sets every element of t to v.
	Fill(t Tensor, v float32) error
	// Copy copies src into dst; with offsets in elements:
	// dst[dstOff+i] = src[srcOff+i] for i < n. n < 0 means src.Len()-srcOff.
	// Ranges must lie inside both tensors.
	Copy(dst Tensor, dstOff int, src Tensor, srcOff, n int) error
	// AddScaled: out += s * x (same length).
	AddScaled(out, x Tensor, s float32) error
	// Mul: out = a * b elementwise (same length).
	Mul(out, a, b Tensor) error
	// AddBias: out[r, c] += b[c] for out [rows, cols], b [cols].
	AddBias(out, b Tensor) error
	// SumRows: out[c] (+)= sum_r x[r, c]; used for bias gradients.
	SumRows(out, x Tensor, accumulate bool) error

	// ---- layers ----

	// Embed: out[i, :] = dequant(table[ids[i], :]); table [vocab, dim] of any dtype.
	Embed(out, table, ids Tensor) error
	// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, for x [rows, dim], w [dim].
	RMSNorm(out, x, w Tensor, eps float32) error
	// RMSNormBackward: dx (+)= d/dx of RMSNorm given dy (w frozen).
	RMSNormBackward(dx, dy, x, w Tensor, eps float32, accumulate bool) error
	// MatMul: out (+)= x · Wᵀ for x [n, in], W [out, in] of any dtype, out [n, out].
	MatMul(out, x, w Tensor, accumulate bool) error
	// MatMulDX: dx (+)= dy · W for dy [n, out], W [out, in] of any dtype, dx [n, in].
	MatMulDX(dx, dy, w Tensor, accumulate bool) error
	// MatMulDW: dw (+)= dyᵀ · x for dy [n, out], x [n, in], dw [out, in] (F32 only).
	MatMulDW(dw, dy, x Tensor, accumulate bool) error
	// RoPE rotates x [rows, Heads*HeadDim] in place; row r has position pos[r % len(pos)]
	// (pos is I32). inverse rotates by the negative angle (the backward pass).
	RoPE(x, pos Tensor, p RoPE, inverse bool) error
	// Attention computes out for q, k, v as described by a; probs may be nil
	// (inference) or an F32 tensor of Batch*Heads*QLen*KVLen elements.
	Attention(out, probs, q, k, v Tensor, a Attention) error
	// AttentionBackward computes dq, dk, dv (overwritten) from dout and the probs
	// saved by Attention. Requires QLen == KVLen == KVCap and QOffset == 0.
	AttentionBackward(dq, dk, dv, dout, probs, q, k, v Tensor, a Attention) error
	// SwiGLU: out = silu(gate) * up.
	SwiGLU(out, gate, up Tensor) error
	// SwiGLUBackward: dgate, dup (overwritten) from dout.
	SwiGLUBackward(dgate, dup, dout, gate, up Tensor) error
	// Dropout: out = x * mask / (1-p) where mask[i] = hash(seed, stream, i) >= p.
	// seed is an I32 tensor of length 1 (per-step; see pkg/backend/rng.go for the
	// hash, which every backend must reproduce bit for bit). Applying Dropout with
	// the same seed and stream to dy gives the backward pass. p == 0 copies.
	Dropout(out, x, seed Tensor, stream uint32, p float32) error

	// ---- loss ----

	// CrossEntropy for logits [n, vocab] and labels [n] (I32, -100 = ignored):
	// loss[i] = -log softmax(logits[i])[labels[i]] (0 when ignored), and when dlogits
	// is non-nil, dlogits[i] = (softmax(logits[i]) - onehot(labels[i])) * scale[0]
	// for trained rows and 0 for ignored ones. scale is an F32 tensor of length 1.
	CrossEntropy(loss, dlogits, logits, labels, scale Tensor) error

	// ---- optimizer ----

	// SumSquares: out[0] (+)= sum of squares of every element of every x, in a fixed order.
	SumSquares(out Tensor, accumulate bool, xs ...Tensor) error
	// AdamW updates param (F32) with grad, moments m and v, per the scalars layout
	// above; sumsq is the SumSquares of all gradients (for clipping).
	AdamW(param, grad, m, v, scalars, sumsq Tensor) error
}

// Program is a recorded sequence of operations that can be replayed.
type Program interface {
	Run() error
	Release()
}

// Profiler is implemented by backends that can time their kernels.
type Profiler interface {
	// Profile returns accumulated per-kernel times since the last reset.
	Profile(reset bool) []KernelTime
}

// KernelTime is the accumulated time of one kernel.
type KernelTime struct {
	Name    string
	Calls   int
	Seconds float64
}
