// Command consumer is the mvrepair service and its operator tools:
//
//	consumer run        the service (docs/design.md §6)
//	consumer demo       embedded broker, sample catalog, compaction stream, summary
//	consumer produce    publish events from an NDJSON file
//	consumer state      export | show | import the local state
//	consumer replay     rewind the stopped group and the applied offsets
//	consumer rebuild    a new state store from the edit log alone
//	consumer checkpoint write a checkpoint now, through the running active instance
//	consumer dlq        list dead letters | re-drive them to their source topics
//	consumer healthcheck  exit 0 if /readyz answers 200 (container health checks)
//	consumer version    module version, VCS revision and time, Go version (also --version)
//
// Every command reads config.yaml (or --config) and MVREPAIR_* env vars; an
// MVREPAIR_* variable that names no key is reported as a warning. Usage
// errors (unknown commands and flags, stray arguments, bad flag values) exit
// with status 2, as do configuration errors.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/logging"
)

func main() { cli.Main("consumer", newRoot()) }

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
		Version:       versionText(debug.ReadBuildInfo()),
		Args:          subcommandArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Declared here, without cobra's -v shorthand (demo uses -v for
	// --verbose).
	root.Flags().Bool("version", false, "print the version (module version, VCS revision and time, Go version) and exit")
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%s%w (see %s --help)", prefix(cmd), err, cmd.CommandPath())
	})
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (default: built-in defaults; every key can be set by MVREPAIR_* env vars)")
	root.AddCommand(newRunCmd(g), newDemoCmd(g), newProduceCmd(g), newStateCmd(g), newReplayCmd(g), newRebuildCmd(g), newCheckpointCmd(g), newDLQCmd(g), newHealthcheckCmd(), newVersionCmd())
	return root
}

// load reads and validates the configuration, writing its warnings (unknown
// MVREPAIR_* variables) to the command's stderr, one line each.
func (g *globals) load(cmd *cobra.Command) (*config.Config, error) {
	cfg, warnings, err := g.loadWithWarnings()
	printWarnings(cmd.ErrOrStderr(), warnings)
	return cfg, err
}

// loadWithWarnings reads and validates the configuration and returns its
// warnings for the caller to report (`run` logs them). A configuration
// error exits with status 2.
func (g *globals) loadWithWarnings() (*config.Config, []config.Warning, error) {
	cfg, warnings, err := config.LoadWithWarnings(g.configPath, os.Environ())
	if err != nil {
		return nil, warnings, &cli.ExitError{Code: 2, Err: err}
	}
	return cfg, warnings, nil
}

// loadWithLogger is load, and the configured logger on stderr.
func (g *globals) loadWithLogger(cmd *cobra.Command) (*config.Config, zerolog.Logger, error) {
	cfg, err := g.load(cmd)
	if err != nil {
		return nil, zerolog.Logger{}, err
	}
	log, err := logger(cfg)
	if err != nil {
		return nil, zerolog.Logger{}, err
	}
	return cfg, log, nil
}

// printWarnings writes one "consumer: warning: ..." line per warning.
func printWarnings(w io.Writer, warnings []config.Warning) {
	for _, wn := range warnings {
		fmt.Fprintln(w, "consumer: warning:", wn)
	}
}

// logWarnings logs one WARN line per warning, with the variable and the
// suggestion as fields.
func logWarnings(log zerolog.Logger, warnings []config.Warning) {
	for _, wn := range warnings {
		ev := log.Warn().Str("env", wn.Var)
		if wn.Suggestion != "" {
			ev = ev.Str("did_you_mean", wn.Suggestion)
		}
		ev.Msg(wn.String())
	}
}

// logger builds the configured logger on stderr.
func logger(cfg *config.Config) (zerolog.Logger, error) {
	return logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
}
