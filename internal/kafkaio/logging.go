package kafkaio

import (
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// debugLogger adapts zerolog to kafka-go's informational Logger (chatty: one
// line per join, sync, commit...), so it logs at Debug.
func debugLogger(l zerolog.Logger, component string) kafka.Logger {
	l = l.With().Str("component", component).Logger()
	return kafka.LoggerFunc(func(msg string, args ...any) {
		l.Debug().Msgf(msg, args...)
	})
}

// warnLogger adapts zerolog to kafka-go's ErrorLogger. kafka-go retries most
// of what it reports there (failed joins during rebalances, reconnects), so it
// logs at Warn rather than Error.
func warnLogger(l zerolog.Logger, component string) kafka.Logger {
	l = l.With().Str("component", component).Logger()
	return kafka.LoggerFunc(func(msg string, args ...any) {
		l.Warn().Msgf(msg, args...)
	})
}
