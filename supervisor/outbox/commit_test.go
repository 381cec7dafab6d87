package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// failingCommits fails the first commits of receipts and of events that no
// other change carries, as a busy or briefly failing disk does.
type failingCommits struct {
	*store.Store
	mu            sync.Mutex
	receiptFails  int
	addEventFails int
}

var errDisk = errors.New("disk I/O error")

func (f *failingCommits) Receipt(ctx context.Context, org string, ids []string, status outbox.Status, at, now time.Time) ([]outbox.Message, error) {
	f.mu.Lock()
	fail := f.receiptFails > 0
	if fail {
		f.receiptFails--
	}
	f.mu.Unlock()
	if fail {
		return nil, errDisk
	}
	return f.Store.Receipt(ctx, org, ids, status, at, now)
}

func (f *failingCommits) AddEvents(ctx context.Context, events ...webhook.Event) error {
	f.mu.Lock()
	fail := f.addEventFails > 0
	if fail {
		f.addEventFails--
	}
	f.mu.Unlock()
	if fail {
		return errDisk
	}
	return f.Store.AddEvents(ctx, events...)
}

// A receipt or a received message whose commit fails is retried, not
// dropped: WhatsApp was acknowledged already, and the old outbox logged
// the error and lost the event.
func TestFailedCommitsOfWorkerEventsAreRetried(t *testing.T) {
	var st *store.Store
	h := newHarnessWith(t, testMessages(), "", func(s *store.Store) outbox.Store {
		st = s
		s.EnableEvents(true, nil)
		return &failingCommits{Store: s, receiptFails: 2, addEventFails: 2}
	})
	h.connect("2", true)
	m := h.send("2", "573000000051", "hello")
	h.until("the message sent", func() bool { return h.status("2", m.ID).Status == outbox.Sent })

	returned := make(chan struct{})
	go func() {
		h.o.Receipt("2", []string{m.WAID}, "delivered", clocktest.Origin())
		h.o.Heard("2", "573000000051@s.whatsapp.net", "573000000051@s.whatsapp.net", "3EB0R", "thanks")
		close(returned)
	}()
	h.until("the receipt and the received message committed", func() bool {
		select {
		case <-returned:
			return true
		default:
			return false
		}
	})
	if got := h.status("2", m.ID).Status; got != outbox.Delivered {
		t.Fatalf("the message is %s after a receipt whose first commits failed", got)
	}
	// sent, delivered, message_received
	if waiting, _, err := st.EventCounts(bg); err != nil || waiting != 3 {
		t.Fatalf("%d webhook events waiting (%v), want 3: sent, delivered and the received message", waiting, err)
	}
}
