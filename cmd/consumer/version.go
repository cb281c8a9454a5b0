package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, VCS revision and time, and Go version of this binary (same as --version)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(debug.ReadBuildInfo()))
			return err
		},
	}
}

// versionText describes the binary from the build information the Go
// toolchain embeds (debug.ReadBuildInfo): no -ldflags needed, and the same
// for `go build`, `go install` and `go run`. It ends with a newline.
//
// The module version is a tag or a pseudo-version when the binary was built
// from a VCS checkout or with `go install module@version`, and "(devel)"
// otherwise. The revision and time are there when the go command stamped
// them (-buildvcs, on by default for `go build` in a git checkout); they are
// absent for `go run`, for builds in a git worktree (Go looks for a .git
// directory), with -buildvcs=false, and in the Docker image, whose build
// context excludes .git.
func versionText(info *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	if !ok || info == nil {
		fmt.Fprintf(&b, "consumer (mvrepair): no build information in this binary\n")
		fmt.Fprintf(&b, "  go:       %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	fmt.Fprintf(&b, "consumer (mvrepair) %s\n", version)
	if info.Main.Path != "" {
		fmt.Fprintf(&b, "  module:   %s\n", info.Main.Path)
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			rev += " (modified: built with uncommitted changes)"
		}
		fmt.Fprintf(&b, "  revision: %s\n", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, "  time:     %s\n", t)
		}
	} else {
		fmt.Fprintf(&b, "  revision: unknown (not stamped: go run, -buildvcs=false, or no .git directory at build time)\n")
	}
	goos, goarch := settings["GOOS"], settings["GOARCH"]
	if goos == "" || goarch == "" {
		goos, goarch = runtime.GOOS, runtime.GOARCH
	}
	fmt.Fprintf(&b, "  go:       %s %s/%s\n", info.GoVersion, goos, goarch)
	return b.String()
}
