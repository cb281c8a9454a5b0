package mvstate_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/mvstate"
)

const crashChildEnv = "MVSTATE_CRASH_CHILD_DIR"

// crashBatch is the deterministic batch number i (1-based) of the crash test:
// batch 1 creates crashMVs MVs; later batches repair a few partitions of each,
// move the MV's last refresh time, record an input offset and an outbox
// message, and every 25th batch replaces one MV wholesale.
const crashMVs = 4

func crashBatch(i int) mvstate.Batch {
	keys := make([]mvstate.MVKey, crashMVs)
	for k := range keys {
		keys[k] = mvstate.MVKey{DBID: 1, MVID: int64(k + 1)}
	}
	return mvstate.Batch{Touched: keys, Structural: i == 1 || i%25 == 0, Apply: func(tx *mvstate.Tx) error {
		tx.SetJournal(int64(i), 1)
		if err := tx.SetOffset("in", i%3, int64(i)); err != nil {
			return err
		}
		tx.AddOutbox(mvstate.OutboxMessage{Topic: "log", Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
		if i == 1 {
			for k := range keys {
				if err := tx.PutMV(sampleMV(1, int64(k+1), 50)); err != nil {
					return err
				}
			}
			return nil
		}
		if i%25 == 0 {
			m := sampleMV(1, int64(i%crashMVs+1), 20+i%30)
			m.LastRefreshTime = int64(i)
			return tx.PutMV(m)
		}
		for k, key := range keys {
			if err := tx.SetPartitions(key, 20001, mvstate.PartitionMap{
				partName((i + k) % 20):   mvstate.NewBasePartitionInfo(int64(i), int64(i), int64(i)),
				partName((i*7 + k) % 20): mvstate.NewBasePartitionInfo(int64(k), int64(i), int64(i+1)),
			}); err != nil {
				return err
			}
			if err := tx.SetLastRefreshTime(key, int64(i)); err != nil {
				return err
			}
		}
		return nil
	}}
}

// TestCrashChild is the child process of TestStore_killNineYieldsACommittedPrefix;
// it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of the crash test only")
	}
	ctx := context.Background()
	s, err := mvstate.Open(ctx, dir, mvstate.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	for i := int(s.JournalID()) + 1; ; i++ {
		if err := s.Commit(ctx, crashBatch(i)); err != nil {
			fmt.Println("commit:", err)
			os.Exit(4)
		}
		fmt.Println("committed", i)
	}
}

func TestStore_killNineYieldsACommittedPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const kills = 30
	lastSeen := 0
	for round := 0; round < kills; round++ {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child has committed a few batches, then kill it
		// after a random further delay: mid-commit or between commits.
		sc := bufio.NewScanner(out)
		acked := 0
		for sc.Scan() && acked < 3 {
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				acked, _ = strconv.Atoi(n)
			}
		}
		time.Sleep(time.Duration(rng.IntN(20_000)) * time.Microsecond)
		_ = cmd.Process.Kill()
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				acked, _ = strconv.Atoi(n)
			}
		}
		_ = cmd.Wait()

		s, err := mvstate.Open(ctx, dir, mvstate.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		j := int(s.JournalID())
		if j < acked {
			t.Fatalf("round %d: commit %d was acknowledged but the store holds only %d", round, acked, j)
		}
		if j < lastSeen {
			t.Fatalf("round %d: journal went backwards from %d to %d", round, lastSeen, j)
		}
		lastSeen = j
		want := mvstate.NewMemory()
		for i := 1; i <= j; i++ {
			if err := want.Commit(ctx, crashBatch(i)); err != nil {
				t.Fatal(err)
			}
		}
		if got, exp := export(t, s), export(t, want); got != exp {
			t.Fatalf("round %d: reopened state is not the committed prefix %d", round, j)
		}
		if got, exp := s.Offsets(), want.Offsets(); fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Fatalf("round %d: offsets %v, want %v", round, got, exp)
		}
		ob, err := s.Outbox(ctx)
		if err != nil || len(ob) != j {
			t.Fatalf("round %d: outbox has %d messages, want %d (%v)", round, len(ob), j, err)
		}
		s.Close()
	}
	t.Logf("%d kills, %d commits survived", kills, lastSeen)
}
