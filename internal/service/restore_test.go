package service

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
)

func TestRestoreRetry_retriesRecordsMissingAFewTimesAndTransientErrorsAlways(t *testing.T) {
	retry := restoreRetry()
	// A restore that raced a truncation below a new checkpoint: tried
	// again (the next one starts from that checkpoint), but not forever.
	missing := fmt.Errorf("restore: %w: journal ids 1..9", recovery.ErrMissingRecords)
	gap := fmt.Errorf("rebuild: %w", &recovery.GapError{After: 0, Next: 10})
	for i := 1; i < missingRecordsAttempts; i++ {
		err := missing
		if i%2 == 0 {
			err = gap
		}
		if !retry(err) {
			t.Fatalf("attempt %d with records missing was not retried", i)
		}
	}
	if retry(missing) {
		t.Fatalf("records missing %d times in a row are still retried", missingRecordsAttempts)
	}
	transient := fmt.Errorf("list offsets: %w", context.DeadlineExceeded)
	if !kafkaio.IsTransient(transient) {
		t.Fatal("the test's transient error is not transient")
	}
	for i := range 20 {
		if !retry(transient) {
			t.Fatalf("transient error %d not retried", i+1)
		}
	}
	if retry(errors.New("editlog: record does not apply")) {
		t.Fatal("an error of the journal's content is retried")
	}
}
