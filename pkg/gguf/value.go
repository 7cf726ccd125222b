package gguf

import (
	"fmt"
	"math"
)

// ValueType is the type tag of a metadata value (gguf_type).
type ValueType uint32

// Metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
	numValueTypes
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if t < numValueTypes {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("value_type(%d)", uint32(t))
}

// scalarSize is the encoded size of a fixed-size scalar (0 for string and array).
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

// Value is a metadata value. Scalars hold uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64 or float64; arrays (Type ==
// TypeArray) hold a slice of the element type ([]uint8 … []string), or []Value
// when the elements are themselves arrays. Elem is the element type of an array.
type Value struct {
	Type ValueType
	Elem ValueType
	v    any
}

// Any returns the Go value (see Value for the possible types).
func (v Value) Any() any { return v.v }

// Len is the number of elements of an array value (0 for scalars).
func (v Value) Len() int {
	if v.Type != TypeArray {
		return 0
	}
	switch a := v.v.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

func (v Value) String() string {
	if v.Type == TypeArray {
		return fmt.Sprintf("[%d × %s]", v.Len(), v.Elem)
	}
	if s, ok := v.v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v.v)
}

// ValueOf wraps a Go value as a metadata Value. Accepted: the scalar types listed
// on Value, int (stored as int64 if it does not fit int32, else int32), slices
// of them, and []Value of arrays (all of the same element type).
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case Value:
		return x, nil
	case uint8:
		return Value{Type: TypeUint8, v: x}, nil
	case int8:
		return Value{Type: TypeInt8, v: x}, nil
	case uint16:
		return Value{Type: TypeUint16, v: x}, nil
	case int16:
		return Value{Type: TypeInt16, v: x}, nil
	case uint32:
		return Value{Type: TypeUint32, v: x}, nil
	case int32:
		return Value{Type: TypeInt32, v: x}, nil
	case float32:
		return Value{Type: TypeFloat32, v: x}, nil
	case bool:
		return Value{Type: TypeBool, v: x}, nil
	case string:
		return Value{Type: TypeString, v: x}, nil
	case uint64:
		return Value{Type: TypeUint64, v: x}, nil
	case int64:
		return Value{Type: TypeInt64, v: x}, nil
	case float64:
		return Value{Type: TypeFloat64, v: x}, nil
	case int:
		if x >= math.MinInt32 && x <= math.MaxInt32 {
			return Value{Type: TypeInt32, v: int32(x)}, nil
		}
		return Value{Type: TypeInt64, v: int64(x)}, nil
	case []uint8:
		return arr(TypeUint8, x), nil
	case []int8:
		return arr(TypeInt8, x), nil
	case []uint16:
		return arr(TypeUint16, x), nil
	case []int16:
		return arr(TypeInt16, x), nil
	case []uint32:
		return arr(TypeUint32, x), nil
	case []int32:
		return arr(TypeInt32, x), nil
	case []float32:
		return arr(TypeFloat32, x), nil
	case []bool:
		return arr(TypeBool, x), nil
	case []string:
		return arr(TypeString, x), nil
	case []uint64:
		return arr(TypeUint64, x), nil
	case []int64:
		return arr(TypeInt64, x), nil
	case []float64:
		return arr(TypeFloat64, x), nil
	case []Value:
		for i, e := range x {
			if e.Type != TypeArray {
				return Value{}, fmt.Errorf("gguf: []Value element %d is %s, want an array (use a typed slice for scalars)", i, e.Type)
			}
		}
		return arr(TypeArray, x), nil
	}
	return Value{}, fmt.Errorf("gguf: unsupported metadata value type %T", x)
}

// MustValue is ValueOf for values known to be supported; it panics otherwise.
func MustValue(x any) Value {
	v, err := ValueOf(x)
	if err != nil {
		panic(err)
	}
	return v
}

func arr(elem ValueType, x any) Value { return Value{Type: TypeArray, Elem: elem, v: x} }

// asUint64 converts any integer scalar to uint64 (false for negative or non-integers).
func (v Value) asUint64() (uint64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	if i, ok := v.asSigned(); ok && i >= 0 {
		return uint64(i), true
	}
	return 0, false
}

func (v Value) asSigned() (int64, bool) {
	switch x := v.v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// asInt64 converts any integer scalar to int64 (false when out of range).
func (v Value) asInt64() (int64, bool) {
	if i, ok := v.asSigned(); ok {
		return i, true
	}
	if u, ok := v.asUint64(); ok && u <= math.MaxInt64 {
		return int64(u), true
	}
	return 0, false
}

func (v Value) asFloat64() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.asSigned(); ok {
		return float64(i), true
	}
	if u, ok := v.asUint64(); ok {
		return float64(u), true
	}
	return 0, false
}
