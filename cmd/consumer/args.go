package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageErrorf is a usage error: it exits with status 2.
func usageErrorf(format string, a ...any) error {
	return &cli.ExitError{Code: 2, Err: fmt.Errorf(format, a...)}
}

// noArgs is the Args of every command that takes no positional arguments.
// cobra's default accepts any argument on a subcommand, so `consumer run
// config.yaml` used to run on the defaults; this refuses the argument and
// names the flag it was probably meant for.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	msg := "unexpected argument " + quoted[0]
	if len(args) > 1 {
		msg = "unexpected arguments " + strings.Join(quoted, " ")
	}
	if hint := flagHint(cmd, args); hint != "" {
		return usageErrorf("%s%s; did you mean %s?", prefix(cmd), msg, hint)
	}
	return usageErrorf("%s%s: %s takes no arguments, only flags (see %s --help)", prefix(cmd), msg, cmd.Name(), cmd.CommandPath())
}

// prefix starts a message about cmd: "state show: ", or "" for the root,
// which main's "consumer: " already names.
func prefix(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

// subcommandArgs is the Args of a command that only groups subcommands
// (the root, `state`): an argument is an unknown command.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%sunknown command %q", prefix(cmd), args[0])
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor leaves to its caller
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usageErrorf("%s; did you mean %s?", msg, strings.Join(s, " or "))
	}
	if isConfigFile(args[0]) {
		return usageErrorf("%s; did you mean %s run --config %s?", msg, cmd.Root().Name(), args[0])
	}
	return usageErrorf("%s (see %s --help)", msg, cmd.CommandPath())
}

// mvSpec is what --mv takes: MV_ID or DB_ID:MV_ID.
var mvSpec = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)

// flagHint guesses the flag a stray argument was meant for, e.g.
// "--config config.yaml" for `run config.yaml`, or "" when nothing fits.
func flagHint(cmd *cobra.Command, args []string) string {
	a := args[0]
	flags := cmd.Flags() // with the inherited ones: cobra merged them when parsing
	has := func(name string) bool { return flags.Lookup(name) != nil }

	// A flag without its dashes: `dry-run`, `from-offset=5`, `from-offset 5`.
	name, value, hasValue := strings.Cut(a, "=")
	if f := flags.Lookup(strings.ReplaceAll(name, "_", "-")); f != nil {
		switch {
		case hasValue:
			return "--" + f.Name + "=" + value
		case f.Value.Type() == "bool":
			return "--" + f.Name
		case len(args) > 1:
			return "--" + f.Name + " " + args[1]
		default:
			return "--" + f.Name + " " + strings.ToUpper(f.Value.Type())
		}
	}
	if len(a) == 1 && flags.ShorthandLookup(a) != nil { // ShorthandLookup panics on longer names
		return "-" + a
	}

	switch ext := strings.ToLower(filepath.Ext(a)); {
	case isConfigFile(a) && has("config"):
		return "--config " + a
	case has("file") && (ext == ".json" || ext == ".ndjson" || a == "-"):
		return "--file " + a
	case has("out") && ext == ".json":
		return "--out " + a
	case has("url") && (strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://")):
		return "--url " + a
	case has("mv") && mvSpec.MatchString(a):
		return "--mv " + a
	case has("from-offset") && isInt(a):
		return "--from-offset " + a
	case has("from-time") && isTime(a):
		return "--from-time " + a
	case has("partition") && isInt(a):
		return "--partition " + a
	case has("file") && isFile(a):
		return "--file " + a
	case isDir(a):
		if has("state-dir") {
			return "--state-dir " + a
		}
		return "MVREPAIR_STATE_DIR=" + a + " (the state.dir key)"
	}
	return ""
}

func isConfigFile(a string) bool {
	ext := strings.ToLower(filepath.Ext(a))
	return ext == ".yaml" || ext == ".yml"
}

func isInt(a string) bool {
	_, err := strconv.ParseInt(a, 10, 64)
	return err == nil
}

func isTime(a string) bool {
	_, err := parseTime(a)
	return err == nil
}

func isFile(a string) bool {
	fi, err := os.Stat(a)
	return err == nil && fi.Mode().IsRegular()
}

func isDir(a string) bool {
	fi, err := os.Stat(a)
	return err == nil && fi.IsDir()
}

// partitionFlag is --partition of `replay`: a partition number, or every
// partition when not given. Its String is "all" for none, so the help says
// "(default all)" once, instead of the description's "(default: all)"
// followed by pflag's "(default -1)" for the sentinel.
type partitionFlag struct{ p *int }

var _ pflag.Value = partitionFlag{}

func (f partitionFlag) String() string {
	if f.p == nil || *f.p < 0 {
		return "all"
	}
	return strconv.Itoa(*f.p)
}

func (f partitionFlag) Set(s string) error {
	if s == "all" {
		*f.p = -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a partition number (0 or more), or all")
	}
	*f.p = n
	return nil
}

func (partitionFlag) Type() string { return "int" }
