package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestCode_isTheExitErrorsCodeAnywhereInTheChain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain error", errors.New("boom"), 1},
		{"exit error", &ExitError{Code: 3, Err: errors.New("busy")}, 3},
		{"wrapped exit error", fmt.Errorf("cmd: %w", &ExitError{Code: 2, Err: errors.New("usage")}), 2},
	} {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("%s: Code = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestExitError_readsAndUnwrapsAsItsError(t *testing.T) {
	inner := errors.New("the cause")
	err := &ExitError{Code: 4, Err: inner}
	if err.Error() != "the cause" || !errors.Is(err, inner) {
		t.Fatalf("Error() = %q, errors.Is(inner) = %v", err.Error(), errors.Is(err, inner))
	}
}

// command is a root command whose run returns err.
func command(err error) *cobra.Command {
	return &cobra.Command{Use: "tool", SilenceErrors: true, SilenceUsage: true,
		RunE: func(*cobra.Command, []string) error { return err }}
}

func TestRun_printsOneLineNamingTheToolAndReturnsTheCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		wantCode int
		wantLine string
	}{
		{"success", nil, 0, ""},
		{"plain error", errors.New("broker down"), 1, "tool: broker down\n"},
		{"exit error", &ExitError{Code: 2, Err: errors.New("bad flag")}, 2, "tool: bad flag\n"},
		{"message already naming the tool", errors.New("tool: case x failed"), 1, "tool: case x failed\n"},
	} {
		var stderr bytes.Buffer
		root := command(tc.err)
		root.SetArgs([]string{})
		if code := Run("tool", root, &stderr); code != tc.wantCode || stderr.String() != tc.wantLine {
			t.Errorf("%s: Run = %d, stderr %q; want %d, %q", tc.name, code, stderr.String(), tc.wantCode, tc.wantLine)
		}
	}
}

func TestRun_givesTheCommandACancelableContext(t *testing.T) {
	var sawDone bool
	root := &cobra.Command{Use: "tool", RunE: func(cmd *cobra.Command, _ []string) error {
		sawDone = cmd.Context().Done() != nil
		return nil
	}}
	root.SetArgs([]string{})
	if code := Run("tool", root, &bytes.Buffer{}); code != 0 || !sawDone {
		t.Fatalf("Run = %d, the command's context can be canceled: %v", code, sawDone)
	}
}
