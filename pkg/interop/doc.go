// Package interop checks lora's adapters against an independent implementation (scripts/peft_reference.py).
package interop
