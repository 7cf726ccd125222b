// Package version reports lora's version, which is part of every stage key.
package version

import "runtime/debug"

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
