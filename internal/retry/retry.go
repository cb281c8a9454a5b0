// Package retry runs an operation with exponential backoff (cenkalti/backoff)
// under one policy shape for the whole service: which errors are worth
// another attempt (ShouldRetry), what happens on each failed attempt
// (OnRetry: count it, log it, report it to the health watchdog) and when to
// give up (MaxElapsedTime, or never). watermill's Retry middleware is the
// model.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy is an exponential backoff.
type Policy struct {
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	// MaxElapsedTime bounds the retries of one Do; zero retries until ctx
	// ends (infrastructure faults the service must outlast: a full disk, a
	// broker down).
	MaxElapsedTime time.Duration
}

// Forever returns p without an elapsed-time bound.
func (p Policy) Forever() Policy { p.MaxElapsedTime = 0; return p }

// Options decide what Do does with a failed attempt.
type Options struct {
	// ShouldRetry reports whether err is worth another attempt; nil retries
	// every error.
	ShouldRetry func(err error) bool
	// OnRetry is called after each failed attempt that will be retried,
	// with the attempt number (1-based) and the wait before the next one.
	OnRetry func(err error, attempt int, wait time.Duration)
}

// ErrGaveUp wraps the last error when Do stops retrying because the
// policy's elapsed time ran out.
var ErrGaveUp = errors.New("retry: gave up")

// Do runs op until it succeeds, fails with an error ShouldRetry refuses,
// ctx ends, or the policy's elapsed time runs out. It returns nil on
// success; otherwise the last error (wrapped with ErrGaveUp when the time
// ran out), and the number of attempts made.
func Do(ctx context.Context, p Policy, o Options, op func(ctx context.Context) error) (int, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.InitialInterval
	b.MaxInterval = p.MaxInterval
	b.Multiplier = p.Multiplier
	b.MaxElapsedTime = p.MaxElapsedTime
	b.RandomizationFactor = 0.2
	b.Reset()
	attempts := 0
	for {
		attempts++
		err := op(ctx)
		if err == nil {
			return attempts, nil
		}
		if ctx.Err() != nil {
			return attempts, err
		}
		if o.ShouldRetry != nil && !o.ShouldRetry(err) {
			return attempts, err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return attempts, errors.Join(ErrGaveUp, err)
		}
		if o.OnRetry != nil {
			o.OnRetry(err, attempts, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempts, err
		case <-t.C:
		}
	}
}
