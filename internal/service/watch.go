package service

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// watch pings the broker for /readyz, measures consumer and follower lag,
// keeps the state and stall metrics current, and logs stalls when they
// start and end.
func (s *Service) watch(ctx context.Context) {
	tick := max(min(s.cfg.Metrics.LagInterval, time.Second, s.cfg.Health.StallTimeout/4), 100*time.Millisecond)
	t := time.NewTicker(tick)
	// A tick may come a little early: what is due every second (the ping)
	// or every interval is done when at most a quarter tick is left.
	slack := tick / 4
	defer t.Stop()
	var lastLag, lastPing, lastState time.Time
	var lastStall string
	logs := newLogFlusher(s)
	for {
		now := time.Now()
		if now.Sub(lastPing) >= time.Second-slack {
			lastPing = now
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := s.kafka.Admin.Ping(pctx)
			cancel()
			s.brokerErr.Store(errBox{err})
		}
		if b := s.brokerErr.Load().(errBox); b.err == nil && now.Sub(lastLag) >= s.cfg.Metrics.LagInterval-slack {
			lastLag = now
			s.measureLag(ctx)
		}
		if now.Sub(lastState) >= 5*time.Second {
			lastState = now
			st := s.Store().State()
			s.Metrics.SetState(st.Len(), st.Entries())
		}
		st := s.Store().State()
		s.Metrics.SetJournalID(st.JournalID())
		for c, stalled := range s.watchdog.Stalled() {
			s.Metrics.SetStalled(c, stalled)
		}
		stall := ""
		if err := s.watchdog.Check(); err != nil {
			stall = err.Error()
		}
		// A stall is logged when it starts, when its reasons change, and
		// when it ends; not every second it lasts (its reasons say for how
		// long: compared without that).
		key := stallFor.ReplaceAllString(stall, "")
		switch {
		case stall != "" && key != lastStall:
			s.log.Error().Str("reason", stall).Msg("stalled: not ready until it makes progress again")
		case stall == "" && lastStall != "":
			s.log.Info().Msg("no longer stalled")
		}
		lastStall = key
		s.Metrics.SetReady(s.ready() == nil)
		logs.flush()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// measureLag updates the consumer lag (active) or the follower lag
// (standby).
func (s *Service) measureLag(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.active.Load() {
		lag, err := kafkaio.Lag(lctx, s.kafka.Admin, s.cfg.Kafka.GroupID, []string{s.topics.Input, s.topics.Catalog})
		if err == nil {
			for topic, parts := range lag {
				for p, l := range parts {
					s.Metrics.SetConsumerLag(topic, p, l)
				}
			}
		}
		s.Metrics.SetFollowerLag(0)
		return
	}
	hwm, err := s.kafka.Admin.HighWatermarks(lctx, s.topics.EditLog)
	if err != nil {
		return
	}
	behind := int64(0)
	st := s.Store().State()
	for p, hw := range hwm {
		behind += max(hw-max(st.AppliedOffset(s.topics.EditLog, p), 0), 0)
	}
	s.Metrics.SetFollowerLag(behind)
	s.followerHealth.Pending(behind > 0 && s.joined.Load() && !s.restoring.Load())
}

// stallFor matches how long a stall has lasted in the watchdog's reasons
// ("writer stalled for 12s: ...", "no progress for 1m5s with work
// pending").
var stallFor = regexp.MustCompile(` for [0-9][0-9hmsµn.]*`)

// logFlusher flushes the log hooks' summaries while the service idles.
type logFlusher struct{ s *Service }

func newLogFlusher(s *Service) logFlusher { return logFlusher{s} }

func (l logFlusher) flush() {
	for _, h := range l.s.hookSet {
		if f, ok := h.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
}

var _ = errors.New
