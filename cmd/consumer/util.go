package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/store"
)

// shutdownContext bounds the last steps of a shutdown.
func shutdownContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// openInput opens file, or stdin for "-". The returned close is never nil.
func openInput(cmd *cobra.Command, file string) (io.Reader, func() error, error) {
	if file == "-" {
		return cmd.InOrStdin(), func() error { return nil }, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// openReadOnly loads the state of a read-only command (state export, state
// show): it creates and changes nothing, and works beside a running service
// (it then shows the last committed state).
func openReadOnly(ctx context.Context, what, dir string) (*store.Store, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("%s: state.dir %s does not exist; check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir))}
	case err != nil:
		return nil, fmt.Errorf("%s: state.dir %s: %w", what, describeDir(dir), err)
	case !fi.IsDir():
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("%s: state.dir %s is not a directory; check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir))}
	}
	s, err := store.OpenReadOnly(ctx, dir)
	if errors.Is(err, store.ErrNoStore) {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("%s: state.dir %s holds no state store; check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir))}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// lockStateDir takes the state dir for a command that writes the store,
// saying what to do when the running service holds it.
func lockStateDir(what, dir string) (*store.Dir, error) {
	d, err := store.LockDir(dir, store.Options{})
	if errors.Is(err, store.ErrLocked) {
		return nil, &cli.ExitError{Code: 3, Err: fmt.Errorf("%s: state dir %s is in use by another mvrepair process (the service?): stop it first", what, describeDir(dir))}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return d, nil
}

// describeDir quotes dir, with its absolute path when it is relative.
func describeDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil && abs != filepath.Clean(dir) {
		return fmt.Sprintf("%q (%s)", dir, abs)
	}
	return strconv.Quote(dir)
}
