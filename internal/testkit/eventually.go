package testkit

import (
	"context"
	"testing"
	"time"
)

// Deadlines. A correct run meets each condition in well under a second or
// two; the margins are for -race on a loaded 2-core machine and for a real
// broker (whose minimum session timeout is 6s).
const (
	WaitLong  = 60 * time.Second
	WaitShort = 20 * time.Second
)

// Eventually polls cond every 20ms until it returns nil, and fails the test
// with cond's last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctx is a context bounded by d and cancelled when the test ends.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
