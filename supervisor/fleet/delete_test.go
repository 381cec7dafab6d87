package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

type nopArchive struct{}

func (nopArchive) Move(org, reason string, now time.Time) (string, error) { return "/auth/" + org, nil }
func (nopArchive) Prune(string, int) ([]string, error)                    { return nil, nil }

// A DELETE fails the organization's queued messages in the commit of its
// tombstone, with no listener to do it in a second transaction: a kill -9
// after the delete can no longer leave a message queued for a later
// registration of the same ID to send, and a message after it is refused.
func TestDeleteFailsQueuedMessagesInTheTombstoneCommit(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(clocktest.Origin())
	f := New(Options{
		Config: testConfig(), Store: st, Archive: nopArchive{}, Metrics: &recMetrics{}, Clock: clk,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter: func(min, _ time.Duration) time.Duration { return min },
		// The worker never comes up: this test is about the commits.
		Launch: func(ctx context.Context, org string) (Worker, error) { <-ctx.Done(); return nil, ctx.Err() },
	})
	f.Boot(nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.Shutdown(ctx)
		st.Close()
	})
	if _, err := f.Start(bg, "2", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	m := outbox.Message{ID: "msg_a", Org: "2", To: "573000000101", Text: "x", WAID: "3EB0A", QueuedAt: clk.Now()}
	if _, _, err := st.InsertMessage(bg, m); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(bg, "2"); err != nil {
		t.Fatal(err)
	}
	got, err := st.Message(bg, "2", m.ID)
	if err != nil || got.Status != outbox.Failed || got.Reason != outbox.ReasonOrgDeleted || !got.FailedAt.Equal(clk.Now().Truncate(time.Millisecond)) {
		t.Fatalf("the queued message after the delete: %s %q at %s, %v", got.Status, got.Reason, got.FailedAt, err)
	}
	m.ID, m.WAID = "msg_b", "3EB0B"
	if _, _, err := st.InsertMessage(bg, m); !errors.Is(err, outbox.ErrUnknownOrg) {
		t.Fatalf("a message after the delete: %v", err)
	}
}
