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

	"github.com/mvrepair/mvrepair/mvstate"
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

// openStore opens the state store of an offline command, saying what to do
// when the running service holds it.
func openStore(ctx context.Context, what, dir string) (*mvstate.Store, error) {
	s, err := mvstate.Open(ctx, dir, mvstate.Options{})
	if errors.Is(err, mvstate.ErrLocked) {
		return nil, fmt.Errorf("%s: %w (stop the service first)", what, err)
	}
	return s, err
}

// requireStore fails unless dir holds a state store. Read-only commands call
// it before opening the store: mvstate.Open creates a missing dir and an
// empty store file, so `state show` on a mistyped state.dir would otherwise
// leave a new store behind and report zero MVs as if that were the state.
func requireStore(what, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &exitError{code: 2, err: fmt.Errorf("%s: state.dir %s does not exist; check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir))}
	case err != nil:
		return fmt.Errorf("%s: state.dir %s: %w", what, describeDir(dir), err)
	case !fi.IsDir():
		return &exitError{code: 2, err: fmt.Errorf("%s: state.dir %s is not a directory; check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir))}
	}
	_, err = os.Stat(filepath.Join(dir, mvstate.FileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &exitError{code: 2, err: fmt.Errorf("%s: state.dir %s holds no state store (no %s); check the state.dir key (--config or MVREPAIR_STATE_DIR)", what, describeDir(dir), mvstate.FileName)}
	case err != nil:
		return fmt.Errorf("%s: state.dir %s: %w", what, describeDir(dir), err)
	}
	return nil
}

// describeDir quotes dir, with its absolute path when it is relative.
func describeDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil && abs != filepath.Clean(dir) {
		return fmt.Sprintf("%q (%s)", dir, abs)
	}
	return strconv.Quote(dir)
}
