package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	walMagic  = "MVRWAL01"
	walPrefix = "wal-"
	walSuffix = ".log"
)

// segment is one log file.
type segment struct {
	path  string
	first uint64 // sequence of its first entry
}

func segmentName(first uint64) string { return fmt.Sprintf("%s%016x%s", walPrefix, first, walSuffix) }

// listSegments returns the log segments in dir, oldest first.
func listSegments(dir string) ([]segment, error) {
	names, err := filepath.Glob(filepath.Join(dir, walPrefix+"*"+walSuffix))
	if err != nil {
		return nil, err
	}
	var out []segment
	for _, p := range names {
		hex := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), walPrefix), walSuffix)
		first, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue // not ours
		}
		out = append(out, segment{path: p, first: first})
	}
	slices.SortFunc(out, func(a, b segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return out, nil
}

func segmentHeader(first uint64) []byte {
	w := enc{b: []byte(walMagic)}
	w.uvarint(first)
	return appendFrame(nil, w.b)
}

// wal is the log's writable end: the active segment. Not safe for
// concurrent use (Store.mu guards it).
type wal struct {
	dir  string
	wrap func(File) File
	sync bool

	f      File
	path   string
	first  uint64 // first entry of the active segment
	size   int64  // bytes of the active segment that are good
	broken error  // a failed write or sync left the file in an unknown state
	buf    []byte
}

// createSegment starts a new active segment whose first entry is first.
// A broken active segment is repaired first: sealing it with the entry of
// a failed append would replay that entry on the next open.
func (w *wal) createSegment(first uint64) error {
	if err := w.repair(); err != nil {
		return err
	}
	path := filepath.Join(w.dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return ioError("create", path, err)
	}
	file := w.file(f)
	hdr := segmentHeader(first)
	if _, err := file.Write(hdr); err != nil {
		file.Close()
		os.Remove(path)
		return ioError("write", path, err)
	}
	if w.sync {
		if err := file.Sync(); err != nil {
			file.Close()
			os.Remove(path)
			return ioError("sync", path, err)
		}
		if err := syncDir(w.dir); err != nil {
			file.Close()
			return ioError("sync", w.dir, err)
		}
	}
	if w.f != nil {
		w.f.Close()
	}
	w.f, w.path, w.first, w.size, w.broken = file, path, first, int64(len(hdr)), nil
	return nil
}

func (w *wal) file(f *os.File) File {
	var file File = osFile{f}
	if w.wrap != nil {
		file = w.wrap(file)
	}
	return file
}

// openActive reopens an existing segment for appending after its good
// bytes (size); anything after them is cut off.
func (w *wal) openActive(seg segment, size int64) error {
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return ioError("open", seg.path, err)
	}
	file := w.file(f)
	if err := file.Truncate(size); err != nil {
		file.Close()
		return ioError("truncate", seg.path, err)
	}
	w.f, w.path, w.first, w.size, w.broken = file, seg.path, seg.first, size, nil
	return nil
}

// repair makes the active segment usable after a failed write or sync: it
// reopens the file and cuts it back to its good bytes.
func (w *wal) repair() error {
	if w.broken == nil {
		return nil
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if err := w.openActive(segment{path: w.path, first: w.first}, w.size); err != nil {
		return err
	}
	if w.sync {
		if err := w.f.Sync(); err != nil {
			w.broken = err
			return ioError("sync", w.path, err)
		}
	}
	return nil
}

// append writes one entry and makes it durable. On failure the segment is
// cut back to its previous end (or marked broken, repaired by the next
// append), so a failed append leaves nothing behind.
func (w *wal) append(payload []byte) (int64, error) {
	if err := w.repair(); err != nil {
		return 0, err
	}
	w.buf = appendFrame(w.buf[:0], payload)
	if _, err := w.f.Write(w.buf); err != nil {
		if terr := w.f.Truncate(w.size); terr != nil {
			w.broken = terr
		}
		return 0, ioError("write", w.path, err)
	}
	if w.sync {
		if err := w.f.Sync(); err != nil {
			// After a failed fsync the file's content is unknown: cut it
			// back to its good bytes now, so that no reader (a read-only
			// open beside the store, the next open after a crash) sees the
			// failed entry; if that fails too, the next append or rotation
			// repairs it first.
			w.broken = err
			_ = w.repair()
			return 0, ioError("sync", w.path, err)
		}
	}
	w.size += int64(len(w.buf))
	return int64(len(w.buf)), nil
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// readSegment reads one segment's entries, calling fn for each. last says
// whether it is the newest segment: only there can a torn tail (a crash
// during an append) be cut off; it returns the good size of the segment.
// Damage anywhere else is a *CorruptError.
func readSegment(seg segment, last bool, fn func(e *entry) error) (good int64, torn bool, err error) {
	b, err := os.ReadFile(seg.path)
	if err != nil {
		return 0, false, fmt.Errorf("store: read %s: %w", seg.path, err)
	}
	corrupt := func(off int64, why string) error { return &CorruptError{Path: seg.path, Offset: off, Reason: why} }
	p, off, st := readFrame(b, 0)
	if st != frameOK {
		if last && len(b) <= len(segmentHeader(^uint64(0))) {
			return 0, true, nil // a segment whose creation was cut short
		}
		return 0, false, corrupt(0, "bad segment header")
	}
	d := dec{b: p}
	if string(d.raw(uint64(len(walMagic)))) != walMagic {
		return 0, false, corrupt(0, "not a log segment")
	}
	if first := d.uvarint(); d.err != nil || first != seg.first {
		return 0, false, corrupt(0, fmt.Sprintf("header says first entry %d, file name %d", first, seg.first))
	}
	want := seg.first
	for {
		start := off
		p, next, st := readFrame(b, off)
		switch st {
		case frameEnd:
			return off, false, nil
		case frameOK:
			e, err := decodeEntry(p)
			if err != nil {
				return 0, false, corrupt(start, "undecodable entry: "+err.Error())
			}
			if e.seq != want {
				return 0, false, corrupt(start, fmt.Sprintf("entry %d where %d was expected", e.seq, want))
			}
			if err := fn(e); err != nil {
				return 0, false, err
			}
			want++
			off = next
			continue
		}
		if !last {
			return 0, false, corrupt(start, "damaged entry in a sealed segment")
		}
		switch {
		case st == frameShort:
			return start, true, nil
		case st == frameZero && allZero(b[start:]):
			return start, true, nil
		case st == frameBad && tornBad(b, start):
			return start, true, nil
		}
		return 0, false, corrupt(start, "damaged entry followed by more data")
	}
}

// tornBad reports whether a frame with a bad checksum at off is the torn
// last write: it claims to end at or past the end of the file.
func tornBad(b []byte, off int64) bool {
	if int64(len(b))-off < frameHeader {
		return true
	}
	n := int64(b[off]) | int64(b[off+1])<<8 | int64(b[off+2])<<16 | int64(b[off+3])<<24
	return off+frameHeader+n >= int64(len(b))
}
