package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/spf13/cobra"
)

func newCheckpointCmd(g *globals) *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "checkpoint [--url http://127.0.0.1:8080]",
		Short: "Write a checkpoint to the snapshot topic now, through the running active instance",
		Long: `Ask the running active instance (its HTTP address, --url) to write a checkpoint now, and wait
until its marker is durable. The active writer also writes checkpoints on its own every
checkpoint.interval or checkpoint.max_records records. A standby refuses (409): ask the
active instance. The marker is printed as JSON.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			if url == "" {
				addr := cfg.HTTP.Addr
				if strings.HasPrefix(addr, ":") {
					addr = "127.0.0.1" + addr
				}
				url = "http://" + addr
			}
			c := &http.Client{Timeout: timeout}
			resp, err := c.Post(strings.TrimSuffix(url, "/")+"/v1/checkpoint", "application/json", nil)
			if err != nil {
				return &cli.ExitError{Code: 1, Err: fmt.Errorf("checkpoint: %w (is the service running? set --url to its http.addr)", err)}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			switch resp.StatusCode {
			case http.StatusOK:
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s", body)
				return err
			case http.StatusConflict:
				return &cli.ExitError{Code: 3, Err: fmt.Errorf("checkpoint: %s is a standby: ask the active instance (%s)", url, strings.TrimSpace(string(body)))}
			default:
				return &cli.ExitError{Code: 1, Err: fmt.Errorf("checkpoint: %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))}
			}
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "base URL of the active instance (default: http.addr on 127.0.0.1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the checkpoint")
	return cmd
}
