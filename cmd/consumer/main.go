// Command consumer is the mvrepair service and its operator tools:
//
//	consumer run        the service (DESIGN.md §6)
//	consumer demo       embedded broker, sample catalog, compaction stream, summary
//	consumer produce    publish events from an NDJSON file
//	consumer state      export | show | import the local state
//	consumer replay     rewind the stopped group and the applied offsets
//	consumer rebuild    a new state store from the edit log alone
//	consumer healthcheck  exit 0 if /readyz answers 200 (container health checks)
//	consumer load       throughput and latency benchmark next to a pass-through baseline
//
// Every command reads config.yaml (or --config) and MVREPAIR_* env vars.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/logging"
)

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	configPath string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "consumer",
		Short:         "mvrepair: keeps materialized-view freshness metadata correct across compaction",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (default: built-in defaults; every key can be set by MVREPAIR_* env vars)")
	root.AddCommand(newRunCmd(g), newDemoCmd(g), newProduceCmd(g), newStateCmd(g), newReplayCmd(g), newRebuildCmd(g), newHealthcheckCmd(), newLoadCmd(g))
	return root
}

// load reads and validates the configuration.
func (g *globals) load() (*config.Config, error) {
	cfg, err := config.Load(g.configPath, os.Environ())
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

// logger builds the configured logger on stderr.
func logger(cfg *config.Config) (zerolog.Logger, error) {
	return logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
}
