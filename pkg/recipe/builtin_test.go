package recipe_test

import (
	"slices"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/recipe"
)

// TestBuiltinFormatsMatchDataset: lint accepts exactly the format names the
// format stage implements.
func TestBuiltinFormatsMatchDataset(t *testing.T) {
	got := slices.Sorted(slices.Values(recipe.BuiltinFormats))
	if want := dataset.BuiltinNames(); !slices.Equal(got, want) {
		t.Errorf("recipe.BuiltinFormats %v, dataset.BuiltinNames %v", got, want)
	}
}
