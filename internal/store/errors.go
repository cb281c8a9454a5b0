package store

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors. Returned errors wrap them (errors.Is).
var (
	// ErrLocked: another process uses the state dir.
	ErrLocked = errors.New("store: state dir is in use by another process")
	// ErrCorrupt: a file of the store is damaged (a checksum does not match,
	// a snapshot is incomplete, log entries are missing). See CorruptError.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrIO: the disk refused a write or a sync (full, read-only, failing).
	// An infrastructure fault: retry later; never blame the batch.
	ErrIO = errors.New("store: disk write failed")
	// ErrNoStore: a read-only open found no store in the state dir.
	ErrNoStore = errors.New("store: no store in the state dir")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// CorruptError says which file is damaged and how.
type CorruptError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: %s is corrupt at offset %d: %s", e.Path, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// ioError wraps a failed write or sync of path with ErrIO.
func ioError(op, path string, err error) error {
	return fmt.Errorf("%w: %s %s: %w", ErrIO, op, path, err)
}

// IsInfra reports whether err is an infrastructure fault of the store (a
// failed write or sync: disk full, I/O error), which must be retried and
// never attributed to the records being committed.
func IsInfra(err error) bool { return errors.Is(err, ErrIO) }

// IsDiskFull reports whether err is a write refused for lack of space.
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
