// Package cli is what the commands (cmd/consumer, cmd/loadgen) share about
// running as a process: the exit status an error carries, and main's run
// with its signal handling and error line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// ExitError carries a process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Code is the exit status of err: 0 for nil, the Code of the first
// *ExitError in its chain, 1 for any other error.
func Code(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// Main runs root with a context that SIGINT and SIGTERM cancel and exits
// as Run says.
func Main(name string, root *cobra.Command) {
	if code := Run(name, root, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// Run executes root with a context that SIGINT and SIGTERM cancel. A
// failure is written to stderr as one line "name: message" (a message that
// already starts with "name: " is not prefixed twice). It returns the exit
// status (Code).
func Run(name string, root *cobra.Command, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(stderr, name+":", strings.TrimPrefix(err.Error(), name+": "))
	}
	return Code(err)
}
