// Package health is the stall watchdog behind /readyz (docs/design.md §5.8):
// the parts of the service that do work (the writer's local commits, its
// publishing, the follower) each report progress and failures to a
// Component, and Check says whether any of them is stuck, and why.
//
// A component is stalled when an operation has been failing for the stall
// timeout (a full disk, a broker down), at once when the failure cannot
// clear by itself (offsets the broker no longer has, a publish the broker
// refuses), or when it has had work pending for the stall timeout without
// making progress (a writer wedged for a reason nobody reported).
package health

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Watchdog tracks components. Its methods are safe for concurrent use.
type Watchdog struct {
	timeout time.Duration
	now     func() time.Time

	mu    sync.Mutex
	comps map[string]*Component
}

// New returns a watchdog with the given stall timeout. now is the clock
// (nil: time.Now).
func New(timeout time.Duration, now func() time.Time) *Watchdog {
	if now == nil {
		now = time.Now
	}
	return &Watchdog{timeout: timeout, now: now, comps: map[string]*Component{}}
}

// Timeout returns the stall timeout.
func (w *Watchdog) Timeout() time.Duration { return w.timeout }

// Component returns the component called name, creating it.
func (w *Watchdog) Component(name string) *Component {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.comps[name]
	if c == nil {
		c = &Component{w: w, name: name, lastProgress: w.now()}
		w.comps[name] = c
	}
	return c
}

// Component is one part of the service that does work.
type Component struct {
	w    *Watchdog
	name string

	mu           sync.Mutex
	pending      bool
	lastProgress time.Time
	failing      error
	failingSince time.Time
	permanent    bool
}

// Progress records that the component completed work: it is no longer
// failing, and the stall clock restarts.
func (c *Component) Progress() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastProgress = c.w.now()
	c.failing, c.permanent = nil, false
}

// Pending says whether the component has work to do (without work, no
// progress is expected).
func (c *Component) Pending(p bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p && !c.pending {
		c.lastProgress = c.w.now() // the clock starts when work arrives
	}
	c.pending = p
}

// Failing records that an operation is failing with err (nil: it no longer
// is). permanent marks a failure that cannot clear by itself: the component
// is stalled at once.
func (c *Component) Failing(err error, permanent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.failing, c.permanent = nil, false
		return
	}
	if c.failing == nil {
		c.failingSince = c.w.now()
	}
	c.failing, c.permanent = err, c.permanent || permanent
}

// Reset forgets the component's state (its role ended).
func (c *Component) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending, c.failing, c.permanent = false, nil, false
	c.lastProgress = c.w.now()
}

// stall returns why the component is stalled, or nil.
func (c *Component) stall(now time.Time, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failing != nil && c.permanent:
		return fmt.Errorf("%s stalled: %w", c.name, c.failing)
	case c.failing != nil && now.Sub(c.failingSince) >= timeout:
		return fmt.Errorf("%s stalled for %s: %w", c.name, now.Sub(c.failingSince).Round(time.Second), c.failing)
	case c.pending && now.Sub(c.lastProgress) >= timeout:
		return fmt.Errorf("%s stalled: no progress for %s with work pending", c.name, now.Sub(c.lastProgress).Round(time.Second))
	}
	return nil
}

// Check returns nil when no component is stalled, else the reasons (one
// error per stalled component, joined).
func (w *Watchdog) Check() error {
	now := w.now()
	w.mu.Lock()
	names := make([]string, 0, len(w.comps))
	for n := range w.comps {
		names = append(names, n)
	}
	w.mu.Unlock()
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		if err := w.Component(n).stall(now, w.timeout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stalled returns each component's stall state (for metrics).
func (w *Watchdog) Stalled() map[string]bool {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]bool, len(w.comps))
	for n, c := range w.comps {
		out[n] = c.stall(now, w.timeout) != nil
	}
	return out
}
