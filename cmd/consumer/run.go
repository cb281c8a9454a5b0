package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/internal/service"
)

func newRunCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the service: consume, repair, journal (SIGINT/SIGTERM shut it down gracefully)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := g.loadWithWarnings()
			if err != nil {
				printWarnings(cmd.ErrOrStderr(), warnings)
				return err
			}
			if dryRun {
				cfg.DryRun = true
			}
			log, err := logger(cfg)
			if err != nil {
				printWarnings(cmd.ErrOrStderr(), warnings)
				return err
			}
			logWarnings(log, warnings) // as log lines: stderr may be a JSON log stream
			for _, w := range cfg.Warnings() {
				log.Warn().Msg(w)
			}
			ctx := cmd.Context()
			svc, err := service.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer svc.Close()
			reader := service.MVReader{Svc: svc}
			srv := httpserver.New(cfg.HTTP.Addr, httpserver.Deps{Health: svc, Metrics: svc.Metrics.Handler(), MVs: reader,
				State: reader, Checkpoints: checkpointer{svc}})
			if err := srv.Start(ctx); err != nil {
				return err
			}
			log.Info().Str("http", srv.Addr()).Strs("brokers", svc.Brokers()).Str("state_dir", cfg.State.Dir).
				Bool("dry_run", cfg.DryRun).Msg("mvrepair started")
			runErr := svc.Run(ctx)
			shutdownCtx, cancel := shutdownContext(cfg.ShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(shutdownCtx)
			if runErr != nil {
				return runErr
			}
			log.Info().Msg("mvrepair stopped cleanly")
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "decide and log repairs; publish and commit nothing")
	return cmd
}

// checkpointer serves POST /v1/checkpoint.
type checkpointer struct{ svc *service.Service }

func (c checkpointer) Checkpoint(ctx context.Context) (any, error) {
	cp, err := c.svc.Checkpoint(ctx)
	if errors.Is(err, service.ErrNotActive) {
		return nil, fmt.Errorf("%w: %w", httpserver.ErrNotActive, err)
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(editlog.AppendCheckpoint(nil, *cp)), nil
}
