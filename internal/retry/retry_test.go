package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/retry"
)

var fast = retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond, Multiplier: 2}

func TestDo_retriesUntilSuccessAndReportsEachFailure(t *testing.T) {
	var seen []int
	n, err := retry.Do(context.Background(), fast, retry.Options{OnRetry: func(_ error, a int, _ time.Duration) { seen = append(seen, a) }},
		func(context.Context) error {
			if len(seen) < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	if err != nil || n != 4 || len(seen) != 3 || seen[2] != 3 {
		t.Fatalf("Do = %d, %v; retries reported %v", n, err, seen)
	}
}

func TestDo_stopsAtAnErrorShouldRetryRefuses(t *testing.T) {
	permanent := errors.New("permanent")
	n, err := retry.Do(context.Background(), fast, retry.Options{ShouldRetry: func(err error) bool { return !errors.Is(err, permanent) }},
		func(context.Context) error { return permanent })
	if n != 1 || !errors.Is(err, permanent) {
		t.Fatalf("Do = %d, %v; want one attempt and the permanent error", n, err)
	}
}

func TestDo_givesUpAfterMaxElapsedTimeWithErrGaveUp(t *testing.T) {
	p := fast
	p.MaxElapsedTime = 20 * time.Millisecond
	boom := errors.New("boom")
	_, err := retry.Do(context.Background(), p, retry.Options{}, func(context.Context) error { return boom })
	if !errors.Is(err, retry.ErrGaveUp) || !errors.Is(err, boom) {
		t.Fatalf("Do = %v, want ErrGaveUp wrapping the last error", err)
	}
}

func TestDo_foreverEndsOnlyWithTheContext(t *testing.T) {
	p := fast
	p.MaxElapsedTime = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n, err := retry.Do(ctx, p.Forever(), retry.Options{}, func(context.Context) error { return errors.New("down") })
	if ctx.Err() == nil || errors.Is(err, retry.ErrGaveUp) || n < 5 {
		t.Fatalf("Do = %d, %v; want many attempts until the context ended", n, err)
	}
}
