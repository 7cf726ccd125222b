// Package version reports lora's version, which is part of every stage key.
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// Version is set at build time with -ldflags "-X github.com/lora-dev/lora/pkg/version.Version=v0.1.0".
// It is part of every stage key, so changing it invalidates cached stage outputs.
var Version = "0.1.0-dev"

// String returns the version with the VCS revision when the binary has one.
func String() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return v
}

// Key identifies this build in stage keys and lock files. A release build
// (Version without "-dev") is its version. A development build adds what
// tells builds apart: the VCS revision of a clean checkout, or else the
// sha256 of the executable itself, so that a rebuilt binary with changed
// code never reuses stage outputs an older build stored in the cache.
func Key() string {
	keyOnce.Do(func() { key = computeKey() })
	return key
}

var (
	keyOnce sync.Once
	key     string
)

func computeKey() string {
	if !strings.HasSuffix(Version, "-dev") {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		clean := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				clean = s.Value == "false"
			}
		}
		if rev != "" && clean {
			return Version + "+" + rev[:min(12, len(rev))]
		}
	}
	exe, err := os.Executable()
	if err == nil {
		if f, err := os.Open(exe); err == nil {
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				return Version + "+exe." + hex.EncodeToString(h.Sum(nil))[:12]
			}
		}
	}
	return Version
}
