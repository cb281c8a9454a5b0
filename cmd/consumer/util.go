package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
