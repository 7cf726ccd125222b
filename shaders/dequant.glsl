// Reads one element of a weight matrix stored as raw words in buffer array w[]
// (declared by the includer), dequantizing GGUF blocks on the fly. The includer
// defines exactly one of W_F32, W_F16, W_Q8_0, W_Q4_0, W_NF4 and provides the
// push constants wbase (byte offset of row 0 in w) and wrow (bytes per row).

uint wbyte(uint b) { return (w[b >> 2] >> ((b & 3u) * 8u)) & 0xffu; }

// whalf reads the binary16 at even byte offset b.
float whalf(uint b) { return unpackHalf2x16((w[b >> 2] >> ((b & 2u) * 8u)) & 0xffffu).x; }

#ifdef W_NF4
// NormalFloat4 code book of QLoRA (bitsandbytes), as float32 bit patterns.
const float nf4[16] = float[16](
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);
#endif

// wload returns element (r, c) of the weight: row r, column c.
float wload(uint r, uint c) {
	uint row = pc.wbase + r * pc.wrow;
#if defined(W_F32)
	return uintBitsToFloat(w[(row >> 2) + c]);
#elif defined(W_F16)
	return whalf(row + 2u * c);
#elif defined(W_Q8_0)
	uint blk = row + (c >> 5) * 34u;
	int q = int(wbyte(blk + 2u + (c & 31u)));
	return whalf(blk) * float(q >= 128 ? q - 256 : q);
#elif defined(W_Q4_0)
	uint blk = row + (c >> 5) * 18u;
	uint j = c & 31u;
	uint q = wbyte(blk + 2u + (j & 15u));
	q = j < 16u ? (q & 15u) : (q >> 4);
	return whalf(blk) * float(int(q) - 8);
#elif defined(W_NF4)
	uint blk = row + (c >> 6) * 36u;
	uint j = c & 63u;
	uint q = wbyte(blk + 4u + (j >> 1));
	q = (j & 1u) == 0u ? (q & 15u) : (q >> 4);
	return nf4[q] * uintBitsToFloat(w[blk >> 2]);
#else
#error "define one of W_F32, W_F16, W_Q8_0, W_Q4_0, W_NF4"
#endif
}
