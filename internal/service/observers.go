package service

import (
	"time"

	"github.com/mvrepair/mvrepair/internal/metrics"
)

// procObs adapts metrics to pipeline.Observer.
type procObs struct{ m *metrics.Metrics }

func (o procObs) Event(kind, outcome string)      { o.m.Event(kind, metrics.Outcome(outcome)) }
func (o procObs) Repairs(n int)                   { o.m.Repairs(n) }
func (o procObs) Skip(reason string)              { o.m.Skip(reason) }
func (o procObs) DLQ(reason string)               { o.m.DLQ(reason) }
func (o procObs) Batch(size int, d time.Duration) { o.m.ObserveBatch(size, d) }
func (o procObs) Records(n int, journalID int64)  { o.m.SetJournalID(journalID) }

// writerObs adapts metrics to pipeline.WriterObserver.
type writerObs struct{ m *metrics.Metrics }

func (o writerObs) Publish(n int, d time.Duration) { o.m.EditLogPublished(n, d) }
func (o writerObs) Retry(op string)                { o.m.Retry(op) }
func (o writerObs) Commit()                        { o.m.Commit() }

// followerObs adapts metrics to pipeline.FollowerObserver.
type followerObs struct{ m *metrics.Metrics }

func (o followerObs) Applied(result string, journalID int64) {
	if result == "applied" {
		o.m.FollowerApplied(1)
		o.m.SetJournalID(journalID)
	}
}
