package service

import (
	"context"
	"errors"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// watch pings the broker for /readyz, measures consumer and follower lag,
// keeps the state and stall metrics current, and logs stalls when they
// start and end.
func (s *Service) watch(ctx context.Context) {
	tick := min(s.cfg.Metrics.LagInterval, time.Second, s.cfg.Health.StallTimeout/4)
	t := time.NewTicker(max(tick, 100*time.Millisecond))
	defer t.Stop()
	var lastLag, lastPing, lastState time.Time
	var lastStall string
	logs := newLogFlusher(s)
	for {
		now := time.Now()
		if now.Sub(lastPing) >= time.Second {
			lastPing = now
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := s.kafka.Admin.Ping(pctx)
			cancel()
			s.brokerErr.Store(errBox{err})
		}
		if b := s.brokerErr.Load().(errBox); b.err == nil && now.Sub(lastLag) >= s.cfg.Metrics.LagInterval {
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
		switch {
		case stall != "" && stall != lastStall:
			s.log.Error().Str("reason", stall).Msg("stalled: not ready until it makes progress again")
		case stall == "" && lastStall != "":
			s.log.Info().Msg("no longer stalled")
		}
		lastStall = stall
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
