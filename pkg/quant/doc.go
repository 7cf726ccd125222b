// Package quant converts float32 to and from half precision and quantized block formats.
//
// The ggml formats (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k … q6_k) follow ggml's
// reference C code (ggml-quants.c) operation for operation, so that quantizing and
// dequantizing here gives bit-identical bytes and floats to llama.cpp's reference
// paths. Every float32 operation is rounded individually (an explicit float32
// conversion stops Go from fusing a multiply and an add), as x86-64 C does.
//
// NF4 is QLoRA's 4-bit NormalFloat (bitsandbytes): 64 values per block, stored as
// the block's float32 absmax followed by 32 bytes of two 4-bit codes (low nibble =
// even index). This layout matches pkg/backend's NF4 DType.
package quant
