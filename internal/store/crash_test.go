package store_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/store"
)

const crashChildEnv = "STORE_CRASH_CHILD_DIR"

// crashOptions make snapshots and segment changes frequent, so that kills
// land in them too.
var crashOptions = store.Options{SnapshotEvery: 24 << 10, SegmentSize: 6 << 10}

// TestCrashChild is the child process of TestStore_killNineYieldsACommittedPrefix;
// it does nothing in a normal run. It commits the deterministic batches
// from where the store is, printing each one's number once it is durable.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of the crash test only")
	}
	ctx := context.Background()
	d, err := store.LockDir(dir, crashOptions)
	if err != nil {
		fmt.Println("lock:", err)
		os.Exit(3)
	}
	s, err := d.Open(ctx)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	next := 1
	for firstOf(next+1)-1 <= int(s.State().JournalID()) {
		next++
	}
	for b := next; ; b++ {
		var ack uint64
		if ob := s.Outbox(); len(ob) > 0 {
			ack = ob[len(ob)/2].Seq
		}
		if _, err := s.Commit(ctx, batchOf(b, ack)); err != nil {
			fmt.Println("commit:", err)
			os.Exit(4)
		}
		fmt.Println("committed", b)
	}
}

// TestStore_killNineYieldsACommittedPrefix kills a committing process at
// random moments (during appends, segment changes and background
// snapshots) and checks after each kill that the store reopens to exactly
// the state of its last durable batch or of the batch after it, never
// anything else, and that it goes on from there.
func TestStore_killNineYieldsACommittedPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const kills = 25
	lastSeen := 0
	refs := map[int]string{}
	ref := func(n int) string {
		if _, ok := refs[n]; !ok {
			refs[n], _ = reference(t, n)
		}
		return refs[n]
	}
	for round := 0; round < kills; round++ {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it commit a random number of batches, then kill it at once.
		want := 1 + rng.IntN(40)
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "committed ") {
				fmt.Sscan(strings.TrimPrefix(line, "committed "), &lastSeen)
				seen++
				if seen >= want {
					break
				}
			} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "commit:") || strings.HasPrefix(line, "lock:") {
				t.Fatalf("child: %s", line)
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond) // the kill lands anywhere in the next batch
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() { // what it reported before it died
			if line := sc.Text(); strings.HasPrefix(line, "committed ") {
				fmt.Sscan(strings.TrimPrefix(line, "committed "), &lastSeen)
			}
		}
		cmd.Wait()

		d, err := store.LockDir(dir, crashOptions)
		if err != nil {
			t.Fatalf("round %d: lock after kill: %v", round, err)
		}
		s, err := d.Open(context.Background())
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		j := int(s.State().JournalID())
		n := 0
		for firstOf(n+2)-1 <= j {
			n++
		}
		if firstOf(n+1)-1 != j {
			t.Fatalf("round %d: journal %d is not a batch boundary", round, j)
		}
		if n < lastSeen || n > lastSeen+1 {
			t.Fatalf("round %d: reopened at batch %d; the child had reported batch %d durable", round, n, lastSeen)
		}
		if got := exportOf(t, s.State()); got != ref(n) {
			t.Fatalf("round %d: state at batch %d differs from the reference", round, n)
		}
		s.Close(context.Background(), false)
		d.Close()
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "store", "*"))
	t.Logf("%d kills; last batch %d; files: %d", kills, lastSeen, len(segs))
}
