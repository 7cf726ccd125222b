package backendtest

import (
	"testing"

	"github.com/lora-dev/lora/pkg/backend/ref"
)

// TestRef runs the kit with the reference against a second reference instance.
func TestRef(t *testing.T) {
	b := ref.New()
	defer b.Close()
	Run(t, b, Options{})
}
