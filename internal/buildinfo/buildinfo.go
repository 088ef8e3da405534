// Package buildinfo is this build of podrun's version, set by the linker
// (make build: -X github.com/podrun/podrun/internal/buildinfo.Version=…),
// for the client's and the server's `podrun version` alike.
package buildinfo

import "runtime/debug"

// Version is git describe's output for the build ("dev" without make).
var Version = "dev"

// String is Version, or for a plain `go build` the VCS revision Go
// recorded.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return Version
}
