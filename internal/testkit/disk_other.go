//go:build !linux

package testkit

import "testing"

// MountTmpfs skips the test: a small file system for disk-full tests is
// only mounted on Linux.
func MountTmpfs(t testing.TB, size string) string {
	t.Skip("disk-full tests mount a tmpfs: Linux only")
	return ""
}

// FillDisk is not reached where MountTmpfs skips.
func FillDisk(t testing.TB, dir string) string {
	t.Skip("disk-full tests: Linux only")
	return ""
}
