package backend

// DropoutKeep reports whether element i survives dropout with probability p,
// for a per-step seed and a per-use stream id. It is a counter-based hash
// (no state), so every backend, every thread and a resumed run compute the same
// mask. Shaders implement the same function (shaders/rng.glsl); a test holds them equal.
func DropoutKeep(seed uint32, stream uint32, i uint32, p float32) bool {
	return Uniform(seed, stream, i) >= p
}

// Uniform maps (seed, stream, i) to a float32 in [0, 1) with 24 bits of randomness.
func Uniform(seed, stream, i uint32) float32 {
	h := Hash3(seed, stream, i)
	return float32(h>>8) * (1.0 / 16777216.0)
}

// Hash3 is a 32-bit integer hash of three words (a PCG-style output permutation
// applied after mixing), cheap in GLSL and Go alike.
func Hash3(a, b, c uint32) uint32 {
	x := a*0x9E3779B1 ^ b*0x85EBCA77 ^ c*0xC2B2AE3D
	x ^= x >> 16
	x *= 0x7FEB352D
	x ^= x >> 15
	x *= 0x846CA68B
	x ^= x >> 16
	x += c
	x ^= x >> 16
	x *= 0x7FEB352D
	x ^= x >> 15
	return x
}
