package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mvrepair/mvrepair/internal/store"
)

// mountTmpfs mounts a small tmpfs at a new temp dir (needs root, as in CI
// and on this project's machines); it skips the test when that is not
// allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the disk-full test needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// TestStore_fullDiskRefusesCommitsWithoutLosingAnythingAndRecovers fills a
// real (tmpfs) disk: commits fail with a disk-full infrastructure error
// and change nothing; once space is freed, commits go on and the store
// reopens to exactly the committed batches.
func TestStore_fullDiskRefusesCommitsWithoutLosingAnythingAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t, "2m")
	dir := filepath.Join(mnt, "state")
	opt := store.Options{SnapshotEvery: 64 << 10, SegmentSize: 32 << 10}
	d, s := openDir(t, dir, opt)
	commitN(t, s, 1, 5)
	// Fill the rest of the disk.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	b := 6
	failures := 0
	for ; failures == 0 && b < 2000; b++ {
		before := exportOf(t, s.State())
		if _, err := s.Commit(context.Background(), batchOf(b, 0)); err != nil {
			if !store.IsInfra(err) || !store.IsDiskFull(err) {
				t.Fatalf("batch %d on a full disk: %v, want a disk-full infrastructure error", b, err)
			}
			if exportOf(t, s.State()) != before {
				t.Fatalf("a refused commit changed the state")
			}
			failures++
			b-- // retried below
		}
	}
	if failures == 0 {
		t.Fatal("the disk never filled up")
	}
	// The operator frees space; the same batch goes through.
	os.Remove(filler)
	commitN(t, s, b, b+5)
	want, _ := reference(t, b+5)
	if got := exportOf(t, s.State()); got != want {
		t.Fatal("state after recovery differs from the reference")
	}
	closeAll(t, d, s)
	d, s = openDir(t, dir, opt)
	defer closeAll(t, d, s)
	if got := exportOf(t, s.State()); got != want {
		t.Fatal("reopened state after a full disk differs from the reference")
	}
}
