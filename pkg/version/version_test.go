package version

import (
	"strings"
	"sync"
	"testing"
)

func TestKey(t *testing.T) {
	defer func(v string) { Version = v; keyOnce = sync.Once{} }(Version)
	Version = "v1.2.3"
	keyOnce = sync.Once{}
	if k := Key(); k != "v1.2.3" {
		t.Errorf("release key %q", k)
	}
	Version = "0.1.0-dev"
	keyOnce = sync.Once{}
	k := Key()
	// a test binary has no clean VCS stamp: the executable's hash tells builds apart
	if !strings.HasPrefix(k, "0.1.0-dev+") || len(k) < len("0.1.0-dev+")+12 {
		t.Errorf("dev key %q names no build", k)
	}
	if Key() != k {
		t.Error("key not stable within a process")
	}
}
