package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File and directory names in a state dir (see doc.go).
const (
	lockName     = "LOCK"
	liveName     = "store"
	newName      = "store.new"
	oldPrefix    = "store.old-"
	completeName = "COMPLETE"
	// legacyName is the bbolt file of mvrepair's first release.
	legacyName = "mvrepair.db"
	// keepOld is how many stores moved aside are kept for the operator.
	keepOld = 2
)

// Dir is a state dir held by this process: its lock, the live store and a
// store being built beside it.
type Dir struct {
	path string
	lock *os.File
	opt  Options
	// Notes collects what opening found and did (a legacy store moved
	// aside, an interrupted swap finished), for the caller to log.
	Notes []string
}

// LockDir takes the state dir (creating it): an error wrapping ErrLocked if
// another process holds it. A state dir that is not a directory, or cannot
// be created, is an error naming it.
func LockDir(path string, opt Options) (*Dir, error) {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("store: state dir %s is a file, not a directory", path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("store: create state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(path, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: state dir %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	d := &Dir{path: path, lock: f, opt: opt}
	if err := d.finishSwap(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Path returns the state dir.
func (d *Dir) Path() string { return d.path }

// Close releases the lock.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// Open opens the live store, creating an empty one when there is none. A
// store of the first release's format (a bbolt file) is moved aside first
// (a Note says where): the caller restores the state from Kafka, as for a
// lost state dir. Damage is an error wrapping ErrCorrupt: see MoveAside.
func (d *Dir) Open(ctx context.Context) (*Store, error) {
	if legacy := filepath.Join(d.path, legacyName); exists(legacy) {
		aside := legacy + ".old-format-" + stamp()
		if err := os.Rename(legacy, aside); err != nil {
			return nil, fmt.Errorf("store: move the old-format store aside: %w", err)
		}
		d.Notes = append(d.Notes, fmt.Sprintf("a store of an older format (%s) was moved to %s; the state is restored from Kafka", legacyName, aside))
	}
	live := filepath.Join(d.path, liveName)
	if err := os.MkdirAll(live, 0o755); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", live, err)
	}
	return open(ctx, live, d.opt, false)
}

// HasStore reports whether the state dir holds a live store (Open would
// otherwise create an empty one).
func (d *Dir) HasStore() bool { return exists(filepath.Join(d.path, liveName)) }

// MoveAside moves the live store out of the way (say, after it was found
// corrupt) and returns where it went; the next Open starts empty.
func (d *Dir) MoveAside() (string, error) {
	live := filepath.Join(d.path, liveName)
	if !exists(live) {
		return "", nil
	}
	aside := filepath.Join(d.path, oldPrefix+stamp())
	if err := os.Rename(live, aside); err != nil {
		return "", fmt.Errorf("store: move %s aside: %w", live, err)
	}
	if err := syncDir(d.path); err != nil {
		return aside, ioError("sync", d.path, err)
	}
	d.pruneOld()
	return aside, nil
}

// Build starts a new, empty store beside the live one (store.new), for a
// rebuild that must not touch the live store until it is complete.
func (d *Dir) Build(ctx context.Context) (*Store, error) {
	nd := filepath.Join(d.path, newName)
	if err := os.RemoveAll(nd); err != nil {
		return nil, fmt.Errorf("store: clear %s: %w", nd, err)
	}
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", nd, err)
	}
	return open(ctx, nd, d.opt, false)
}

// Install makes a store started with Build the live one: it writes a
// snapshot of it unless a recent one is on disk (so it opens fast), marks it complete, moves the live
// store aside (the returned path; "" when there was none) and renames the
// new one into place. The new store stays open and usable; the old one, if
// open, must be closed by the caller (its files are no longer live). A crash
// during Install is finished by the next LockDir.
func (d *Dir) Install(ctx context.Context, nw *Store) (string, error) {
	nd := filepath.Join(d.path, newName)
	if nw.dir != nd {
		return "", fmt.Errorf("store: install: %s is not a store being built in %s", nw.dir, d.path)
	}
	// No background snapshot may run while the directory moves (it would
	// write into the old path).
	release := nw.holdSnapshots()
	defer release()
	if err := nw.snapshotIfStale(ctx); err != nil {
		return "", err
	}
	if err := writeMarker(filepath.Join(nd, completeName)); err != nil {
		return "", err
	}
	if err := syncDir(nd); err != nil {
		return "", ioError("sync", nd, err)
	}
	aside, err := d.MoveAside()
	if err != nil {
		return "", err
	}
	live := filepath.Join(d.path, liveName)
	if err := os.Rename(nd, live); err != nil {
		return aside, fmt.Errorf("store: rename %s to %s: %w", nd, live, err)
	}
	if err := syncDir(d.path); err != nil {
		return aside, ioError("sync", d.path, err)
	}
	os.Remove(filepath.Join(live, completeName))
	nw.setDir(live)
	return aside, nil
}

// Discard closes a store started with Build and removes it.
func (d *Dir) Discard(nw *Store) error {
	nd := filepath.Join(d.path, newName)
	if nw.dir != nd {
		return fmt.Errorf("store: discard: %s is not a store being built in %s", nw.dir, d.path)
	}
	nw.Close(context.Background(), false)
	return os.RemoveAll(nd)
}

// finishSwap completes or discards a swap a crash interrupted: a complete
// store.new with no live store is renamed into place; an incomplete one is
// removed.
func (d *Dir) finishSwap() error {
	nd := filepath.Join(d.path, newName)
	if !exists(nd) {
		return nil
	}
	live := filepath.Join(d.path, liveName)
	if exists(filepath.Join(nd, completeName)) && !exists(live) {
		if err := os.Rename(nd, live); err != nil {
			return fmt.Errorf("store: finish an interrupted swap: %w", err)
		}
		os.Remove(filepath.Join(live, completeName))
		d.Notes = append(d.Notes, "finished a store swap that a crash had interrupted")
		return syncDir(d.path)
	}
	if err := os.RemoveAll(nd); err != nil {
		return fmt.Errorf("store: remove an unfinished rebuild %s: %w", nd, err)
	}
	d.Notes = append(d.Notes, "removed an unfinished rebuild ("+nd+")")
	return nil
}

// pruneOld keeps the newest keepOld stores moved aside.
func (d *Dir) pruneOld() {
	old, _ := filepath.Glob(filepath.Join(d.path, oldPrefix+"*"))
	slices.Sort(old) // names carry sortable time stamps
	for len(old) > keepOld {
		os.RemoveAll(old[0])
		old = old[1:]
	}
}

func (s *Store) setDir(dir string) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dir = dir
	if fj, ok := s.log.(*fileJournal); ok {
		fj.w.dir = dir
		fj.w.path = filepath.Join(dir, filepath.Base(fj.w.path))
	}
}

func writeMarker(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return ioError("create", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return ioError("sync", path, err)
	}
	return f.Close()
}

func stamp() string {
	return strings.ReplaceAll(time.Now().UTC().Format("20060102T150405.000000000Z"), ".", "")
}

// OpenReadOnly loads the live store of a state dir for reading (state
// export, state show) without taking the lock and without writing anything:
// it works beside a running service (it then shows the last committed
// state). It fails with ErrNoStore when the state dir holds no store.
func OpenReadOnly(ctx context.Context, stateDir string) (*Store, error) {
	live := filepath.Join(stateDir, liveName)
	fi, err := os.Stat(live)
	if err != nil || !fi.IsDir() {
		if exists(filepath.Join(stateDir, legacyName)) {
			return nil, fmt.Errorf("%w: %s holds a store of an older format (%s); start the service once to restore it from Kafka", ErrNoStore, stateDir, legacyName)
		}
		return nil, fmt.Errorf("%w: %s (is state.dir right?)", ErrNoStore, stateDir)
	}
	// The service may complete a snapshot while we read (deleting the log
	// segments and the snapshot we listed): a file gone, or entries missing
	// between the snapshot we read and the segments left. Try again a few
	// times before believing it.
	var s *Store
	for attempt := 0; attempt < 8; attempt++ {
		s, err = open(ctx, live, Options{SnapshotEvery: -1}, true)
		if err == nil || !(errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrCorrupt)) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return s, err
}
