// Package gguf reads and writes GGUF v2/v3 files (llama.cpp's model and adapter format).
//
// Reading is lazy: Open parses the header, metadata and tensor descriptors, and
// tensor bytes are read on demand (TensorData, TensorFloat32).
//
// The reader treats its input as hostile. It never panics and never allocates
// more than the file could back:
//   - magic must be "GGUF" (else ErrFormat); only versions 2 and 3 are read (else
//     ErrVersion, with a hint for v1 and for big-endian files);
//   - at most MaxKVCount metadata entries and MaxTensorCount tensors, and the
//     counts must fit in the bytes that remain;
//   - strings are at most MaxStringLen bytes, arrays at most MaxArrayLen elements,
//     arrays nest at most 8 deep, and every length is checked against the bytes
//     left in the file before anything is allocated; bools must be 0 or 1;
//   - duplicate metadata keys and tensor names are errors;
//   - general.alignment, when present, must be a uint32 power of two up to 1 MiB;
//   - tensors have rank <= MaxDims (4), a known type, a first dimension that is a
//     multiple of the type's block size, an element count and byte size that do
//     not overflow int64, an offset that is a multiple of the alignment, and data
//     inside the file ("tensor X runs past end of file (needs N bytes at offset O,
//     file has S)"); no two tensors may overlap.
//
// Writing (Write, Encode) produces GGUF v3 with the tensor data aligned to
// general.alignment (default 32); Write is atomic (temporary file + rename).
package gguf
