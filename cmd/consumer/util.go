package main

import (
	"context"
	"time"
)

// shutdownContext bounds the last steps of a shutdown.
func shutdownContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
