package store

import (
	"encoding/binary"
	"hash/crc32"
	"os"
)

// File is the writable end of a log segment. Options.WrapFile may wrap it
// (tests inject disk faults with it); production code uses the OS file.
type File interface {
	Write(p []byte) (int, error)
	// Sync makes written data durable (fdatasync).
	Sync() error
	Truncate(size int64) error
	Close() error
}

// osFile is a File on the OS, with Sync as fdatasync where there is one.
type osFile struct{ f *os.File }

func (o osFile) Write(p []byte) (int, error) { return o.f.Write(p) }
func (o osFile) Sync() error                 { return datasync(o.f) }
func (o osFile) Truncate(size int64) error   { return o.f.Truncate(size) }
func (o osFile) Close() error                { return o.f.Close() }

// syncDir makes a directory's entries (created, renamed, removed files)
// durable.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Framing. Every record of a log segment or snapshot file is a frame:
//
//	u32 length of payload | u32 CRC-32C of payload | payload
//
// (little endian). A frame's CRC covers its payload only; the length is
// checked for sanity and by the CRC of what it delimits.
const (
	frameHeader = 8
	// maxFrame bounds a frame's payload: larger lengths are damage.
	maxFrame = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends a frame holding payload.
func appendFrame(dst, payload []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameStatus says what readFrame found.
type frameStatus int

const (
	frameOK    frameStatus = iota
	frameEnd               // no bytes left
	frameShort             // the frame runs past the end of the data
	frameBad               // the checksum does not match, or the length is absurd
	frameZero              // a zero header: zero-filled space (a crash after the file grew)
)

// readFrame reads the frame at b[off:].
func readFrame(b []byte, off int64) (payload []byte, next int64, st frameStatus) {
	rest := b[off:]
	switch {
	case len(rest) == 0:
		return nil, off, frameEnd
	case len(rest) < frameHeader:
		return nil, off, frameShort
	}
	n := binary.LittleEndian.Uint32(rest[:4])
	sum := binary.LittleEndian.Uint32(rest[4:8])
	if n == 0 && sum == 0 {
		return nil, off, frameZero
	}
	if n > maxFrame {
		return nil, off, frameBad
	}
	if int64(len(rest)) < frameHeader+int64(n) {
		return nil, off, frameShort
	}
	p := rest[frameHeader : frameHeader+int64(n)]
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, off, frameBad
	}
	return p, off + frameHeader + int64(n), frameOK
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
