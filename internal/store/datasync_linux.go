package store

import (
	"os"
	"syscall"
)

// datasync flushes a file's data (not its metadata, unless needed to read
// the data back): one fdatasync.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
