//go:build tools

// Package deps pins the project's direct dependencies in go.mod while the
// packages that use them are being written. It is never compiled.
package deps

import (
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rs/zerolog"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
	_ "pgregory.net/rapid"
)
