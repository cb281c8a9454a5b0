package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

func commitN(t *testing.T, s *store.Store, from, to int) {
	t.Helper()
	for b := from; b <= to; b++ {
		if _, err := s.Commit(context.Background(), batchOf(b, 0)); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
}

func TestStore_reopenGivesTheLastCommit(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	commitN(t, s, 1, 30)
	live := exportOf(t, s.State())
	offs := s.State().Offsets()
	ob := s.Outbox()
	closeAll(t, d, s)

	d, s = openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != live {
		t.Fatalf("reopened state differs:\n%.300s\nwant\n%.300s", got, live)
	}
	if want, _ := reference(t, 30); live != want {
		t.Fatal("the store's state differs from a memory store fed the same batches")
	}
	if got := s.State().Offsets(); len(got) != len(offs) || got[mvstate.TopicPartition{Topic: "in", Partition: 0}] != 30 {
		t.Fatalf("offsets %v, want %v", got, offs)
	}
	if got := s.Outbox(); len(got) != len(ob) || got[len(got)-1].Seq != ob[len(ob)-1].Seq {
		t.Fatalf("outbox of %d messages after reopen, want %d", len(got), len(ob))
	}
	if r := s.Recovery(); r.Entries != 30 || r.Snapshot != "" {
		t.Fatalf("recovery %+v, want 30 entries replayed and no snapshot", r)
	}
}

func TestStore_outboxHoldsEveryQueuedMessageUntilAcknowledged(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	res, err := s.Commit(context.Background(), batchOf(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outbox) != 3 || res.Outbox[0].Seq != 1 || res.Outbox[0].JournalID != 1 ||
		string(res.Outbox[0].Key) != "1:1" || string(res.Outbox[0].Headers[0].Value) != "1" {
		t.Fatalf("outbox of the first batch: %+v", res.Outbox)
	}
	res7 := batchOf(7, 0)
	commitN(t, s, 2, 6)
	r7, err := s.Commit(context.Background(), res7)
	if err != nil {
		t.Fatal(err)
	}
	last := r7.Outbox[len(r7.Outbox)-1]
	if last.Topic != "dlq" || last.Value == nil || len(last.Value) != 0 || last.JournalID != 0 {
		t.Fatalf("a dead letter with an empty value must stay empty, not null: %+v", last)
	}
	// Acknowledge through batch 6's messages in batch 8's commit.
	if _, err := s.Commit(context.Background(), batchOf(8, r7.Outbox[0].Seq-1)); err != nil {
		t.Fatal(err)
	}
	if got := s.Outbox(); got[0].Seq != r7.Outbox[0].Seq {
		t.Fatalf("outbox starts at %d after the ack, want %d", got[0].Seq, r7.Outbox[0].Seq)
	}
	closeAll(t, d, s)
	d, s = openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	got := s.Outbox()
	if got[0].Seq != r7.Outbox[0].Seq || len(got) != len(r7.Outbox)+3 {
		t.Fatalf("reopened outbox %d messages from %d, want %d from %d", len(got), got[0].Seq, len(r7.Outbox)+3, r7.Outbox[0].Seq)
	}
	dl := got[len(r7.Outbox)-1]
	if dl.Value == nil || len(dl.Value) != 0 || string(dl.Headers[0].Value) != "invalid_json" {
		t.Fatalf("dead letter after reopen: %+v", dl)
	}
}

func TestStore_snapshotsBoundTheLogAndReopenFromThem(t *testing.T) {
	dir := t.TempDir()
	opt := store.Options{SnapshotEvery: -1, SegmentSize: 4 << 10}
	d, s := openDir(t, dir, opt)
	commitN(t, s, 1, 60)
	if err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	commitN(t, s, 61, 70)
	live := exportOf(t, s.State())
	closeAll(t, d, s)
	segs, _ := filepath.Glob(filepath.Join(dir, "store", "wal-*.log"))
	snaps, _ := filepath.Glob(filepath.Join(dir, "store", "snap-*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("after a snapshot: %d snapshot files, want 1", len(snaps))
	}
	for _, seg := range segs {
		var first uint64
		fmt.Sscanf(filepath.Base(seg), "wal-%x.log", &first)
		if first <= 60 {
			t.Fatalf("segment %s holds entries the snapshot (through entry 60) made redundant", seg)
		}
	}
	d, s = openDir(t, dir, opt)
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != live {
		t.Fatal("state reopened from snapshot + log differs")
	}
	if r := s.Recovery(); r.Snapshot == "" || r.Entries != 10 {
		t.Fatalf("recovery %+v, want the snapshot and 10 entries", r)
	}
	if want, _ := reference(t, 70); live != want {
		t.Fatal("state differs from the reference")
	}
}

func TestStore_backgroundSnapshotsDuringCommitsKeepTheStateExact(t *testing.T) {
	dir := t.TempDir()
	opt := store.Options{SnapshotEvery: 16 << 10, SegmentSize: 8 << 10}
	d, s := openDir(t, dir, opt)
	commitN(t, s, 1, 400)
	live := exportOf(t, s.State())
	if err := s.Close(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, s = openDir(t, dir, opt)
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != live {
		t.Fatal("state differs after background snapshots")
	}
	if r := s.Recovery(); r.Entries != 0 {
		t.Fatalf("a final snapshot was written at close, yet %d entries were replayed", r.Entries)
	}
}

func TestStore_tornLastEntryIsCutOff(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	commitN(t, s, 1, 10)
	want := exportOf(t, s.State())
	closeAll(t, d, s)
	seg := lastSegment(t, dir)
	// A crash during the append of batch 11: half of a frame.
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7})
	f.Close()
	d, s = openDir(t, dir, store.Options{})
	if got := exportOf(t, s.State()); got != want {
		t.Fatal("state after a torn append differs from the last commit")
	}
	if r := s.Recovery(); r.TornBytes != 11 {
		t.Fatalf("torn bytes %d, want 11", r.TornBytes)
	}
	commitN(t, s, 11, 12) // appends after the cut
	closeAll(t, d, s)
	d, s = openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if ref, _ := reference(t, 12); exportOf(t, s.State()) != ref {
		t.Fatal("commits after a cut torn tail did not land cleanly")
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "store", "wal-*.log"))
	if len(segs) == 0 {
		t.Fatal("no log segment")
	}
	return segs[len(segs)-1]
}

func TestStore_damageIsReportedAsCorruptNeverServed(t *testing.T) {
	build := func(t *testing.T, snapshot bool) string {
		dir := t.TempDir()
		d, s := openDir(t, dir, store.Options{SnapshotEvery: -1})
		commitN(t, s, 1, 20)
		if snapshot {
			if err := s.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			commitN(t, s, 21, 22)
		}
		closeAll(t, d, s)
		return dir
	}
	for name, damage := range map[string]struct {
		snapshot bool
		do       func(t *testing.T, dir string)
	}{
		"a flipped byte inside the log": {false, func(t *testing.T, dir string) { flip(t, lastSegment(t, dir), 0.5) }},
		"a changed version inside the log": {false, func(t *testing.T, dir string) {
			replaceIn(t, lastSegment(t, dir), `"version":11,`, `"version":99,`)
		}},
		"zeroed pages in the log":            {false, func(t *testing.T, dir string) { zero(t, lastSegment(t, dir), 0.3, 4096) }},
		"a flipped byte inside the snapshot": {true, func(t *testing.T, dir string) { flip(t, snapshotFile(t, dir), 0.5) }},
		"a truncated snapshot": {true, func(t *testing.T, dir string) {
			if err := os.Truncate(snapshotFile(t, dir), 800); err != nil {
				t.Fatal(err)
			}
		}},
		"a missing log segment": {false, func(t *testing.T, dir string) {
			d, s := openDir(t, dir, store.Options{SnapshotEvery: -1, SegmentSize: 1 << 10})
			commitN(t, s, 21, 40)
			closeAll(t, d, s)
			segs, _ := filepath.Glob(filepath.Join(dir, "store", "wal-*.log"))
			os.Remove(segs[1])
		}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := build(t, damage.snapshot)
			damage.do(t, dir)
			d, err := store.LockDir(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			s, err := d.Open(context.Background())
			var ce *store.CorruptError
			if !errors.Is(err, store.ErrCorrupt) || !errors.As(err, &ce) {
				if s != nil {
					s.Close(context.Background(), false)
				}
				t.Fatalf("open of a damaged store: %v, want a *CorruptError", err)
			}
			aside, err := d.MoveAside()
			if err != nil || aside == "" {
				t.Fatalf("move aside: %q, %v", aside, err)
			}
			s, err = d.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background(), false)
			if !s.State().Empty() {
				t.Fatal("the store opened after moving the damaged one aside is not empty")
			}
		})
	}
}

func snapshotFile(t *testing.T, dir string) string {
	t.Helper()
	snaps, _ := filepath.Glob(filepath.Join(dir, "store", "snap-*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("%d snapshot files", len(snaps))
	}
	return snaps[0]
}

func flip(t *testing.T, path string, at float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[int(float64(len(b))*at)] ^= 0x40
	os.WriteFile(path, b, 0o644)
}

func zero(t *testing.T, path string, at float64, n int) {
	t.Helper()
	b, _ := os.ReadFile(path)
	i := int(float64(len(b)) * at)
	for j := i; j < min(i+n, len(b)-100); j++ {
		b[j] = 0
	}
	os.WriteFile(path, b, 0o644)
}

func replaceIn(t *testing.T, path, old, nw string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %s", path, old)
	}
	os.WriteFile(path, []byte(strings.Replace(string(b), old, nw, 1)), 0o644)
}

func TestStore_secondProcessIsRefusedTheStateDir(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if _, err := store.LockDir(dir, store.Options{}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second LockDir: %v, want ErrLocked", err)
	}
}

func TestStore_stateDirThatIsAFileIsANamedError(t *testing.T) {
	f := filepath.Join(t.TempDir(), "state")
	os.WriteFile(f, []byte("x"), 0o644)
	if _, err := store.LockDir(f, store.Options{}); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("LockDir of a file: %v", err)
	}
}

// faultyFile fails writes or syncs while fail is set.
type faultyFile struct {
	store.File
	failWrite, failSync *error
}

func (f faultyFile) Write(p []byte) (int, error) {
	if *f.failWrite != nil {
		return len(p) / 2, *f.failWrite // a partial write, as a full disk gives
	}
	return f.File.Write(p)
}

func (f faultyFile) Sync() error {
	if *f.failSync != nil {
		return *f.failSync
	}
	return f.File.Sync()
}

func TestStore_failedWriteOrSyncKeepsNothingAndTheNextCommitSucceeds(t *testing.T) {
	var failWrite, failSync error
	opt := store.Options{WrapFile: func(f store.File) store.File { return faultyFile{f, &failWrite, &failSync} }}
	dir := t.TempDir()
	d, s := openDir(t, dir, opt)
	commitN(t, s, 1, 5)
	before := exportOf(t, s.State())
	for _, fault := range []*error{&failWrite, &failSync} {
		*fault = syscall.ENOSPC
		_, err := s.Commit(context.Background(), batchOf(6, 0))
		if !store.IsInfra(err) || !store.IsDiskFull(err) {
			t.Fatalf("commit on a full disk: %v, want an infrastructure error (disk full)", err)
		}
		if got := exportOf(t, s.State()); got != before || s.State().JournalID() != 15 {
			t.Fatal("a failed commit changed the state")
		}
		*fault = nil
	}
	commitN(t, s, 6, 8)
	live := exportOf(t, s.State())
	closeAll(t, d, s)
	d, s = openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != live {
		t.Fatal("after failed commits, the log does not reopen to the state")
	}
	if ref, _ := reference(t, 8); live != ref {
		t.Fatal("state differs from the reference")
	}
}

func TestStore_buildBesideAndInstallSwapsOnlyWhenComplete(t *testing.T) {
	dir := t.TempDir()
	d, live := openDir(t, dir, store.Options{})
	commitN(t, live, 1, 5)
	nw, err := d.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	commitN(t, nw, 1, 9)
	if exportOf(t, live.State()) == exportOf(t, nw.State()) {
		t.Fatal("test needs different states")
	}
	want := exportOf(t, nw.State())
	aside, err := d.Install(context.Background(), nw)
	if err != nil {
		t.Fatal(err)
	}
	live.Close(context.Background(), false)
	if aside == "" || !strings.Contains(aside, "store.old-") {
		t.Fatalf("old store moved to %q", aside)
	}
	commitN(t, nw, 10, 11) // the installed store keeps working
	want11 := exportOf(t, nw.State())
	closeAll(t, d, nw)
	d, s := openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != want11 || want == want11 {
		t.Fatal("the installed store does not reopen as the live one")
	}
}

func TestDir_installSnapshotsABuiltStoreOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("log only: a snapshot is written", func(t *testing.T) {
		d, _ := openDir(t, t.TempDir(), store.Options{})
		nw, err := d.Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		commitN(t, nw, 1, 4)
		if _, err := d.Install(ctx, nw); err != nil {
			t.Fatal(err)
		}
		defer closeAll(t, d, nw)
		if nw.SnapshotBytes() == 0 || nw.LogSize() != 0 {
			t.Fatalf("installed with %d snapshot bytes written, %d log bytes since", nw.SnapshotBytes(), nw.LogSize())
		}
	})
	t.Run("loaded checkpoint and a short tail: not written again", func(t *testing.T) {
		dir := t.TempDir()
		d, _ := openDir(t, dir, store.Options{})
		sd, src := openDir(t, t.TempDir(), store.Options{})
		defer closeAll(t, sd, src)
		commitN(t, src, 1, 2)
		nw, err := d.Build(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := src.State()
		err = nw.Load(ctx, st.JournalID(), st.Epoch(), nil, func(add func(*mvstate.MV, int64)) error {
			for _, k := range st.Keys() {
				add(st.Get(k), st.JournalID())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		loaded := nw.SnapshotBytes()
		commitN(t, nw, 3, 3) // the tail: less log than the snapshot
		if _, err := d.Install(ctx, nw); err != nil {
			t.Fatal(err)
		}
		want := exportOf(t, nw.State())
		if loaded == 0 || nw.SnapshotBytes() != loaded {
			t.Fatalf("Load wrote %d snapshot bytes, after Install %d (want no second snapshot)", loaded, nw.SnapshotBytes())
		}
		closeAll(t, d, nw)
		d, s := openDir(t, dir, store.Options{})
		defer closeAll(t, d, s)
		if exportOf(t, s.State()) != want {
			t.Fatal("the installed store does not reopen to its state (snapshot + tail)")
		}
	})
}

func TestDir_installWaitsForBackgroundSnapshots(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// A snapshot after every commit: one is running in the background when
	// Install moves the directory (a race -race reports, and a snapshot
	// written into the old path).
	opt := store.Options{SnapshotEvery: 1}
	d, _ := openDir(t, dir, opt)
	nw, err := d.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One large MV (its snapshot takes a while), committed last: its
	// background snapshot is running when Install starts.
	commitN(t, nw, 1, 30)
	upsert := func(id int64, parts int) {
		m := sampleMV(1, id, 0)
		for i := range parts {
			m.VersionMap[20001][fmt.Sprintf("p%06d", i)] = mvstate.NewBasePartitionInfo(int64(i+1), 5, 1000)
		}
		if _, err := nw.Commit(ctx, store.Batch{Mode: editlog.Strict, PublishTo: "edit-log", Records: []*editlog.Record{{
			JournalID: nw.State().JournalID() + 1, Epoch: 1, Op: editlog.OpUpserted, At: 1,
			MV: editlog.MVRef{DBID: 1, MVID: id, MVName: m.MVName}, Definition: m}}}); err != nil {
			t.Fatal(err)
		}
	}
	upsert(99, 100_000)
	// Small commits until one starts the background snapshot of the large
	// state (the log is cut when it starts).
	for id := int64(100); nw.LogSize() > 1<<20; id++ {
		if id > 10_000 {
			t.Fatal("no background snapshot started")
		}
		upsert(id, 1)
	}
	if _, err := d.Install(ctx, nw); err != nil {
		t.Fatal(err)
	}
	want := exportOf(t, nw.State())
	upsert(98, 10) // background snapshots go on in the new place
	want33 := exportOf(t, nw.State())
	closeAll(t, d, nw)
	if _, err := os.Stat(filepath.Join(dir, "store.new")); !os.IsNotExist(err) {
		t.Fatalf("store.new exists after Install (%v): a snapshot was written into the old path", err)
	}
	d, s := openDir(t, dir, opt)
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != want33 || want == want33 {
		t.Fatal("the installed store does not reopen to its state")
	}
}

func TestLockDir_finishesASwapACrashInterrupted(t *testing.T) {
	dir := t.TempDir()
	d, _ := openDir(t, dir, store.Options{})
	nw, _ := d.Build(context.Background())
	commitN(t, nw, 1, 3)
	want := exportOf(t, nw.State())
	nw.Snapshot(context.Background())
	nw.Close(context.Background(), false)
	d.Close()
	// Crash after the live store was moved aside, before the rename.
	os.WriteFile(filepath.Join(dir, "store.new", "COMPLETE"), nil, 0o644)
	os.Rename(filepath.Join(dir, "store"), filepath.Join(dir, "store.old-x"))
	d, s := openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if exportOf(t, s.State()) != want || len(d.Notes) != 1 {
		t.Fatalf("interrupted swap not finished (notes %v)", d.Notes)
	}
}

func TestLockDir_removesAnUnfinishedBuild(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	commitN(t, s, 1, 2)
	want := exportOf(t, s.State())
	nw, _ := d.Build(context.Background())
	commitN(t, nw, 1, 9)
	nw.Close(context.Background(), false)
	closeAll(t, d, s)
	d, s = openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if exportOf(t, s.State()) != want || exists(filepath.Join(dir, "store.new")) {
		t.Fatal("an unfinished build was not discarded")
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestOpen_movesAnOldFormatStoreAsideAndStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mvrepair.db"), []byte("bbolt"), 0o600)
	d, s := openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	if !s.State().Empty() || len(d.Notes) != 1 || exists(filepath.Join(dir, "mvrepair.db")) {
		t.Fatalf("old-format store: empty=%v notes=%v", s.State().Empty(), d.Notes)
	}
}

func TestOpenReadOnly_createsNothingAndSeesTheLastCommit(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := store.OpenReadOnly(context.Background(), missing); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("read-only open of a missing dir: %v", err)
	}
	if exists(missing) {
		t.Fatal("a read-only open created the state dir")
	}
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{})
	defer closeAll(t, d, s)
	commitN(t, s, 1, 4)
	ro, err := store.OpenReadOnly(context.Background(), dir) // beside the running store
	if err != nil {
		t.Fatal(err)
	}
	if exportOf(t, ro.State()) != exportOf(t, s.State()) {
		t.Fatal("read-only view differs")
	}
	ro.Close(context.Background(), false)
}

func TestStore_bytesWrittenPerCommitStayNearTheRecordBytes(t *testing.T) {
	dir := t.TempDir()
	d, s := openDir(t, dir, store.Options{SnapshotEvery: -1})
	defer closeAll(t, d, s)
	commitN(t, s, 1, 2)
	var recBytes, written int64
	for b := 3; b < 40; b++ {
		bt := batchOf(b, 0)
		for _, r := range bt.Records {
			recBytes += int64(len(editlog.AppendRecord(nil, r)))
		}
		res, err := s.Commit(context.Background(), bt)
		if err != nil {
			t.Fatal(err)
		}
		written += res.Bytes
	}
	if written > 2*recBytes {
		t.Fatalf("wrote %d bytes for %d bytes of records: over 2x", written, recBytes)
	}
}

func TestStore_snapshotsAddAtMostHalfTheLogBytes(t *testing.T) {
	dir := t.TempDir()
	// A snapshot threshold far below the state's size: without the rule
	// that spaces snapshots by twice the last one's size, every few commits
	// would rewrite the whole state.
	d, s := openDir(t, dir, store.Options{SnapshotEvery: 4 << 10, NoSync: true})
	defer d.Close()
	var recBytes, logBytes int64
	var acked uint64
	// A large MV makes the state far larger than the threshold.
	if err := s.Load(context.Background(), 0, 0, nil, func(add func(*mvstate.MV, int64)) error {
		add(sampleMV(2, 1, 3000), 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for b := 1; b < 2000; b++ {
		bt := batchOf(b, acked) // the broker acknowledged the previous batch
		for _, r := range bt.Records {
			recBytes += int64(len(editlog.AppendRecord(nil, r)))
		}
		res, err := s.Commit(context.Background(), bt)
		if err != nil {
			t.Fatal(err)
		}
		logBytes += res.Bytes
		if n := len(res.Outbox); n > 0 {
			acked = res.Outbox[n-1].Seq
		}
	}
	if err := s.Close(context.Background(), false); err != nil { // waits for a snapshot in flight
		t.Fatal(err)
	}
	snapBytes := s.SnapshotBytes()
	t.Logf("records %d bytes, log %d, snapshots %d", recBytes, logBytes, snapBytes)
	if snapBytes == 0 {
		t.Fatal("no snapshot was written")
	}
	if snapBytes > logBytes/2+logBytes/10 {
		t.Errorf("snapshots wrote %d bytes for %d bytes of log: more than half", snapBytes, logBytes)
	}
	if total := logBytes + snapBytes; total > 2*recBytes {
		t.Fatalf("wrote %d bytes (log %d, snapshots %d) for %d bytes of records: over 2x", total, logBytes, snapBytes, recBytes)
	}
}
