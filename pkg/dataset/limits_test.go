package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/diag"
)

func TestRecordSizeLimit(t *testing.T) {
	defer func(n int64) { maxRecordBytes = n }(maxRecordBytes)
	maxRecordBytes = 1000
	p := filepath.Join(t.TempDir(), "big.jsonl")
	small := `{"a": "x"}` + "\n"
	// Many small records pass: the limit is per record.
	os.WriteFile(p, []byte(strings.Repeat(small, 1<<13)), 0o644)
	recs, err := ReadAll(p)
	if err != nil || len(recs) != 1<<13 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	// One record of 2 MiB does not: it is refused before being buffered whole.
	for _, body := range []string{
		small + `{"a": "` + strings.Repeat("y", 2<<20) + `"}`,
		"[" + `{"a": "` + strings.Repeat("y", 2<<20) + `"}]`,
	} {
		os.WriteFile(p, []byte(body), 0o644)
		err = Read(p, func(Record) error { return nil })
		var d diag.Diagnostic
		if !errors.As(err, &d) || d.Code != "record-too-large" {
			t.Errorf("err = %v, want record-too-large", err)
		}
	}
}
