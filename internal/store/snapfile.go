package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	snapMagic  = "MVRSNP01"
	snapEnd    = "MVRSEND1"
	snapPrefix = "snap-"
	snapSuffix = ".snap"
)

func snapName(seq uint64) string { return fmt.Sprintf("%s%016x%s", snapPrefix, seq, snapSuffix) }

// snapFile is one snapshot file.
type snapFile struct {
	path string
	seq  uint64 // the last log entry it includes
}

// listSnapshots returns the snapshot files in dir, newest first.
func listSnapshots(dir string) ([]snapFile, error) {
	names, err := filepath.Glob(filepath.Join(dir, snapPrefix+"*"+snapSuffix))
	if err != nil {
		return nil, err
	}
	var out []snapFile
	for _, p := range names {
		hex := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), snapPrefix), snapSuffix)
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		out = append(out, snapFile{path: p, seq: seq})
	}
	slices.SortFunc(out, func(a, b snapFile) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	return out, nil
}

// snapMeta is what a snapshot holds besides the MVs.
type snapMeta struct {
	seq              uint64
	journalID, epoch int64
	outboxSeq, acked uint64
	offsets          map[mvstate.TopicPartition]int64
	dropped          map[mvstate.MVKey]int64
	outbox           []OutboxMessage
}

func (m *snapMeta) encode() []byte {
	w := enc{b: []byte(snapMagic)}
	w.uvarint(m.seq)
	w.varint(m.journalID)
	w.varint(m.epoch)
	w.uvarint(m.outboxSeq)
	w.uvarint(m.acked)
	tps := make([]mvstate.TopicPartition, 0, len(m.offsets))
	for tp := range m.offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b mvstate.TopicPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	w.uvarint(uint64(len(tps)))
	for _, tp := range tps {
		w.str(tp.Topic)
		w.uvarint(uint64(tp.Partition))
		w.varint(m.offsets[tp])
	}
	w.uvarint(uint64(len(m.dropped)))
	for k, j := range m.dropped {
		w.varint(k.DBID)
		w.varint(k.MVID)
		w.varint(j)
	}
	w.uvarint(uint64(len(m.outbox)))
	for _, o := range m.outbox {
		w.uvarint(o.Seq)
		encodeMessage(&w, o)
	}
	return w.b
}

func decodeSnapMeta(p []byte) (*snapMeta, error) {
	d := dec{b: p}
	if string(d.raw(uint64(len(snapMagic)))) != snapMagic {
		return nil, errors.New("not a snapshot")
	}
	m := &snapMeta{seq: d.uvarint(), journalID: d.varint(), epoch: d.varint(), outboxSeq: d.uvarint(), acked: d.uvarint(),
		offsets: map[mvstate.TopicPartition]int64{}, dropped: map[mvstate.MVKey]int64{}}
	for n := d.count(3); n > 0; n-- {
		tp := mvstate.TopicPartition{Topic: d.str(), Partition: int(d.uvarint())}
		m.offsets[tp] = d.varint()
	}
	for n := d.count(3); n > 0; n-- {
		k := mvstate.MVKey{DBID: d.varint(), MVID: d.varint()}
		m.dropped[k] = d.varint()
	}
	for n := d.count(7); n > 0; n-- {
		seq := d.uvarint()
		o := decodeMessage(&d)
		o.Seq = seq
		m.outbox = append(m.outbox, o)
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// writeSnapshot writes the snapshot file of sn and meta into dir and
// returns its path. The file appears under its final name only once it is
// complete and durable.
func writeSnapshot(ctx context.Context, dir string, meta *snapMeta, sn *mvstate.Snapshot, sync bool) (string, error) {
	final := filepath.Join(dir, snapName(meta.seq))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", ioError("create", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var frame, rec []byte
	write := func(p []byte) error {
		frame = appendFrame(frame[:0], p)
		_, err := bw.Write(frame)
		return err
	}
	if err := write(meta.encode()); err != nil {
		return "", ioError("write", tmp, err)
	}
	n := uint64(0)
	err = sn.Each(ctx, func(v mvstate.SnapMV) error {
		if v.MV == nil {
			return nil
		}
		n++
		rec = editlog.AppendSnapshot(rec[:0], editlog.MVSnapshot{JournalID: v.JournalID, Epoch: sn.Epoch, MV: v.MV})
		return write(rec)
	})
	if err != nil {
		if errors.Is(err, mvstate.ErrSnapshotClosed) || ctx.Err() != nil {
			return "", err
		}
		return "", ioError("write", tmp, err)
	}
	foot := enc{b: []byte(snapEnd)}
	foot.uvarint(n)
	if err := write(foot.b); err != nil {
		return "", ioError("write", tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return "", ioError("write", tmp, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return "", ioError("sync", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return "", ioError("close", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", ioError("rename", tmp, err)
	}
	ok = true
	if sync {
		if err := syncDir(dir); err != nil {
			return final, ioError("sync", dir, err)
		}
	}
	return final, nil
}

// frameReader reads frames from a stream, counting the offset.
type frameReader struct {
	r    *bufio.Reader
	path string
	off  int64
}

func (fr *frameReader) next() ([]byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &CorruptError{Path: fr.path, Offset: fr.off, Reason: "snapshot ends before its footer"}
		}
		return nil, fmt.Errorf("store: read %s: %w", fr.path, err)
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n > maxFrame {
		return nil, &CorruptError{Path: fr.path, Offset: fr.off, Reason: "absurd frame length"}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &CorruptError{Path: fr.path, Offset: fr.off, Reason: "snapshot ends inside a frame"}
		}
		return nil, fmt.Errorf("store: read %s: %w", fr.path, err)
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, &CorruptError{Path: fr.path, Offset: fr.off, Reason: "checksum mismatch"}
	}
	fr.off += frameHeader + int64(n)
	return p, nil
}

// loadSnapshot reads a snapshot file into st (which must be new) and
// returns its meta. MV records are decoded on every core.
func loadSnapshot(ctx context.Context, path string, st *mvstate.State) (*snapMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer f.Close()
	fr := &frameReader{r: bufio.NewReaderSize(f, 1<<20), path: path}
	p, err := fr.next()
	if err != nil {
		return nil, err
	}
	meta, err := decodeSnapMeta(p)
	if err != nil {
		return nil, &CorruptError{Path: path, Offset: 0, Reason: "bad header: " + err.Error()}
	}
	if err := loadMVs(ctx, fr, st); err != nil {
		return nil, err
	}
	for k, j := range meta.dropped {
		st.LoadDropped(k, j)
	}
	st.LoadMeta(meta.journalID, meta.epoch, meta.offsets)
	return meta, nil
}

// loadMVs loads the MV frames of fr into st up to the footer, whose count
// they must match. They are decoded on every core.
func loadMVs(ctx context.Context, fr *frameReader, st *mvstate.State) error {
	type job struct {
		p   []byte
		off int64
	}
	jobs := make(chan job, 64)
	var mu sync.Mutex // guards st (LoadMV) and firstErr
	var firstErr error
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for j := range jobs {
				s, err := editlog.DecodeSnapshot(j.p)
				mu.Lock()
				if err == nil {
					st.LoadMV(s.MV, s.JournalID)
				} else if firstErr == nil {
					firstErr = &CorruptError{Path: fr.path, Offset: j.off, Reason: err.Error()}
				}
				mu.Unlock()
			}
		})
	}
	var n uint64
	var readErr error
	for {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		off := fr.off
		p, err := fr.next()
		if err != nil {
			readErr = err
			break
		}
		if len(p) >= len(snapEnd) && string(p[:len(snapEnd)]) == snapEnd {
			d := dec{b: p[len(snapEnd):]}
			if want := d.uvarint(); d.err != nil || want != n {
				readErr = &CorruptError{Path: fr.path, Offset: off, Reason: fmt.Sprintf("footer counts %d MVs, the file holds %d", want, n)}
			}
			break
		}
		n++
		jobs <- job{p: p, off: off}
	}
	close(jobs)
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return firstErr
}
