package gguf

import (
	"fmt"
	"strings"
)

// GGMLType is a ggml tensor element type, numbered as in ggml.h.
type GGMLType uint32

// ggml tensor types. The gaps (4, 5) are types removed from ggml long ago.
const (
	F32     GGMLType = 0
	F16     GGMLType = 1
	Q4_0    GGMLType = 2
	Q4_1    GGMLType = 3
	Q5_0    GGMLType = 6
	Q5_1    GGMLType = 7
	Q8_0    GGMLType = 8
	Q8_1    GGMLType = 9
	Q2_K    GGMLType = 10
	Q3_K    GGMLType = 11
	Q4_K    GGMLType = 12
	Q5_K    GGMLType = 13
	Q6_K    GGMLType = 14
	Q8_K    GGMLType = 15
	IQ2_XXS GGMLType = 16
	IQ2_XS  GGMLType = 17
	IQ3_XXS GGMLType = 18
	IQ1_S   GGMLType = 19
	IQ4_NL  GGMLType = 20
	IQ3_S   GGMLType = 21
	IQ2_S   GGMLType = 22
	IQ4_XS  GGMLType = 23
	I8      GGMLType = 24
	I16     GGMLType = 25
	I32     GGMLType = 26
	I64     GGMLType = 27
	F64     GGMLType = 28
	IQ1_M   GGMLType = 29
	BF16    GGMLType = 30
	TQ1_0   GGMLType = 34
	TQ2_0   GGMLType = 35
	MXFP4   GGMLType = 39
)

type typeInfo struct {
	name        string
	block, size int // values per block, bytes per block
}

// typeTable mirrors ggml's type_traits (blck_size, type_size).
var typeTable = map[GGMLType]typeInfo{
	F32:     {"f32", 1, 4},
	F16:     {"f16", 1, 2},
	Q4_0:    {"q4_0", 32, 18},
	Q4_1:    {"q4_1", 32, 20},
	Q5_0:    {"q5_0", 32, 22},
	Q5_1:    {"q5_1", 32, 24},
	Q8_0:    {"q8_0", 32, 34},
	Q8_1:    {"q8_1", 32, 36},
	Q2_K:    {"q2_k", 256, 84},
	Q3_K:    {"q3_k", 256, 110},
	Q4_K:    {"q4_k", 256, 144},
	Q5_K:    {"q5_k", 256, 176},
	Q6_K:    {"q6_k", 256, 210},
	Q8_K:    {"q8_k", 256, 292},
	IQ2_XXS: {"iq2_xxs", 256, 66},
	IQ2_XS:  {"iq2_xs", 256, 74},
	IQ3_XXS: {"iq3_xxs", 256, 98},
	IQ1_S:   {"iq1_s", 256, 50},
	IQ4_NL:  {"iq4_nl", 32, 18},
	IQ3_S:   {"iq3_s", 256, 110},
	IQ2_S:   {"iq2_s", 256, 82},
	IQ4_XS:  {"iq4_xs", 256, 136},
	I8:      {"i8", 1, 1},
	I16:     {"i16", 1, 2},
	I32:     {"i32", 1, 4},
	I64:     {"i64", 1, 8},
	F64:     {"f64", 1, 8},
	IQ1_M:   {"iq1_m", 256, 56},
	BF16:    {"bf16", 1, 2},
	TQ1_0:   {"tq1_0", 256, 54},
	TQ2_0:   {"tq2_0", 256, 66},
	MXFP4:   {"mxfp4", 32, 17},
}

// String returns ggml's lower-case type name ("q4_0"), or "type(N)" when unknown.
func (t GGMLType) String() string {
	if ti, ok := typeTable[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether t is a type this package knows the block layout of.
func (t GGMLType) Known() bool { _, ok := typeTable[t]; return ok }

// BlockSize is the number of values per block (1 for plain types, 0 if unknown).
func (t GGMLType) BlockSize() int { return typeTable[t].block }

// BlockBytes is the size in bytes of one block (0 if unknown).
func (t GGMLType) BlockBytes() int { return typeTable[t].size }

// ParseType returns the type named s (as String prints it, case-insensitive).
func ParseType(s string) (GGMLType, bool) {
	for t, ti := range typeTable {
		if strings.EqualFold(ti.name, s) {
			return t, true
		}
	}
	return 0, false
}
