package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/quant"
)

// Tensor is a tensor to write; Data holds little-endian elements of DType.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NewF32 makes an F32 tensor from values in row-major order.
func NewF32(name string, shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	_ = quant.EncodeF32(b, data)
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Write writes tensors and metadata to path atomically (temporary file in the
// same directory, then rename).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := Encode(bw, tensors, metadata); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// Encode writes a safetensors image: tensors sorted by name, data in that order,
// header padded with spaces to a multiple of 8 bytes.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	ts := append([]Tensor(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if metadata != nil {
		sep()
		writeJSONString(&hdr, "__metadata__")
		hdr.WriteByte(':')
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		hdr.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				hdr.WriteByte(',')
			}
			writeJSONString(&hdr, k)
			hdr.WriteByte(':')
			writeJSONString(&hdr, metadata[k])
		}
		hdr.WriteByte('}')
	}
	var off int64
	for i, t := range ts {
		if t.Name == "__metadata__" {
			return fmt.Errorf("a tensor cannot be named __metadata__")
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		ri := rawInfo{DType: t.DType, Shape: make([]int64, len(t.Shape)), DataOffsets: []int64{off, off + int64(len(t.Data))}}
		for k, d := range t.Shape {
			ri.Shape[k] = int64(d)
		}
		if _, err := checkInfo(t.Name, ri); err != nil {
			return err
		}
		sep()
		writeJSONString(&hdr, t.Name)
		fmt.Fprintf(&hdr, `:{"dtype":%s,"shape":[`, strconv.Quote(string(t.DType)))
		for k, d := range t.Shape {
			if k > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, off+int64(len(t.Data)))
		off += int64(len(t.Data))
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // drop Encode's newline
}
