package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/mvrepair/mvrepair/internal/store"
)

// PauseAtCommitEnv makes a child freeze itself (SIGSTOP) right after a
// local commit became durable and before the writer publishes it: its
// value is the path of a trigger file, and the first commit of a batch
// (a log entry of more than pauseMinEntry bytes: one with edit-log
// records, not an acknowledgement) whose fdatasync completes after the
// file appeared stops the process inside that fdatasync. The test thaws it
// with Child.Resume; it can tell the child froze with Child.Stopped. A
// writer frozen there holds journal records nobody else has seen: the
// writer that takes over decides the same input again under the same
// journal ids, and the frozen one, thawed, finds its store forked.
const PauseAtCommitEnv = "MVREPAIR_TESTKIT_PAUSE_AT_COMMIT"

// pauseMinEntry is the size above which a log entry is taken for a batch
// with edit-log records (an entry holding only acknowledgements and
// offsets is some tens of bytes; one edit-log record alone is hundreds).
const pauseMinEntry = 512

// pauseAtCommit wraps the store's log files so that the process stops
// itself after the first durable batch once trigger exists.
func pauseAtCommit(trigger string) func(store.File) store.File {
	fired := new(atomic.Bool)
	return func(f store.File) store.File {
		return &pauseFile{File: f, trigger: trigger, fired: fired}
	}
}

type pauseFile struct {
	store.File
	trigger string
	fired   *atomic.Bool // one pause per process
	armed   atomic.Bool  // the last write was a batch written after the trigger
}

func (p *pauseFile) Write(b []byte) (int, error) {
	if !p.fired.Load() && len(b) > pauseMinEntry {
		if _, err := os.Stat(p.trigger); err == nil {
			p.armed.Store(true)
		}
	}
	return p.File.Write(b)
}

func (p *pauseFile) Sync() error {
	err := p.File.Sync()
	if err == nil && p.armed.Swap(false) && p.fired.CompareAndSwap(false, true) {
		// Synchronous: the commit does not return (and nothing is
		// published) before the test thaws the process.
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
	return err
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stopped reports whether the child is stopped by a signal (SIGSTOP): the
// state field of /proc/<pid>/stat is T.
func (c *Child) Stopped() (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Pid()))
	if err != nil {
		return false, err
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the
	// state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false, fmt.Errorf("unexpected /proc/%d/stat: %q", c.Pid(), b)
	}
	s := bufio.NewScanner(bytes.NewReader(b[i+1:]))
	s.Split(bufio.ScanWords)
	if !s.Scan() {
		return false, fmt.Errorf("unexpected /proc/%d/stat: %q", c.Pid(), b)
	}
	return s.Text() == "T", nil
}
