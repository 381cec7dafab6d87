package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// sweepEvery is how often expired messages are looked for.
const sweepEvery = 30 * time.Second

// sweep fails the messages still queued after expire_after.
func (o *Outbox) sweep() {
	defer o.wg.Done()
	tick := time.NewTicker(min(sweepEvery, max(time.Second, o.cfg.ExpireAfter.Duration/10)))
	defer tick.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-tick.C:
		}
		now := o.clock.Now()
		expired, err := o.store.ExpireQueued(context.Background(), now.Add(-o.cfg.ExpireAfter.Duration), now)
		if err != nil {
			o.log.Error("expiring messages failed; tried again at the next sweep", "err", err)
			continue
		}
		if len(expired) == 0 {
			continue
		}
		byOrg := map[string]int{}
		for _, m := range expired {
			byOrg[m.Org]++
		}
		for org, n := range byOrg {
			o.log.Warn("messages expired unsent", "org", org, "messages", n, "expire_after", o.cfg.ExpireAfter.Duration.String())
		}
		o.failedMessages(expired, "expired")
	}
}

// receiptStatus maps a worker's receipt type to a message status.
var receiptStatus = map[string]Status{"delivered": Delivered, "read": Read, "played": Read}

// Receipt records that the recipient's phone received or read messages.
// It runs on the worker's event stream and returns once the receipt is
// committed: a failed commit is retried (commit), which holds the stream
// back meanwhile, so the worker's later events wait in its bounded queue
// instead of overtaking a receipt that is not recorded yet.
func (o *Outbox) Receipt(org string, waIDs []string, typ string, at time.Time) {
	status, ok := receiptStatus[typ]
	if !ok {
		return
	}
	now := o.clock.Now()
	if at.IsZero() {
		// A receipt without its time: now is the best known.
		at = now
	}
	var changed []Message
	err := o.commit(org, "a receipt", func() error {
		var err error
		changed, err = o.store.Receipt(context.Background(), org, waIDs, status, at, now)
		return err
	})
	if err != nil {
		o.log.Error("a receipt is lost: its commit kept failing", "org", org, "receipt", typ, "messages", len(waIDs), "err", err)
		return
	}
	for _, m := range changed {
		o.log.Debug("message "+string(status), "org", org, "message", m.ID)
	}
}

// Heard records a message the organization received: its text goes to the
// webhook as message_received (when webhook.incoming is on), and its sender
// becomes a known contact, so the new-chat restriction does not hold
// messages to them. Like Receipt, it retries a failed commit before it
// returns to the worker's event stream.
//
// Only a direct message makes a contact (a group member is not a chat), and
// only from a phone-number JID: a LID is not a number this outbox sends to.
func (o *Outbox) Heard(org, sender, chat, id, text string) {
	user, server, _ := strings.Cut(sender, "@")
	number, _, _ := strings.Cut(user, ":")
	_, chatServer, _ := strings.Cut(chat, "@")
	from := sender
	if server == "s.whatsapp.net" {
		from = number
	}
	if text != "" {
		e := webhook.NewEvent(webhook.MessageReceived, org, "", "", o.clock.Now(),
			map[string]string{"from": from, "chat": chat, "text": text, "message_id": id})
		err := o.commit(org, "a received message", func() error { return o.store.AddEvents(context.Background(), e) })
		if err != nil {
			o.log.Error("a received message is lost for the webhook: its commit kept failing", "org", org, "message_id", id, "err", err)
		}
	}
	if number == "" || server != "s.whatsapp.net" || (chatServer != "s.whatsapp.net" && chatServer != "lid") {
		return
	}
	if err := o.store.AddContact(context.Background(), org, number); err != nil {
		o.log.Error("remembering a contact failed", "org", org, "err", err)
	}
}

// Retries of a failed commit of what a worker streamed: WhatsApp has been
// acknowledged already (whatsmeow acks a message once it is decrypted), so
// a commit given up is an event lost. A minute covers a busy or briefly
// failing disk; a store failing for longer fails /readyz anyway.
const (
	commitFirstRetry = 100 * time.Millisecond
	commitMaxRetry   = 5 * time.Second
	commitGiveUpAt   = time.Minute
)

// commit runs fn until it succeeds, waiting between attempts on the
// outbox's clock; it gives up after commitGiveUpAt or when the outbox
// stops, with fn's last error.
func (o *Outbox) commit(org, what string, fn func() error) error {
	start := o.clock.Now()
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				o.log.Info("recorded "+what+" after failed commits", "org", org, "attempts", attempt)
			}
			return nil
		}
		if o.clock.Now().Sub(start) >= commitGiveUpAt {
			return fmt.Errorf("recording %s: gave up after %d attempts: %w", what, attempt, err)
		}
		wait := backoff.Delay(commitFirstRetry, commitMaxRetry, attempt)
		o.log.Warn("recording "+what+" failed; retried", "org", org, "attempt", attempt, "retry_in", wait.String(), "err", err)
		if !o.pause(wait) {
			return fmt.Errorf("recording %s: the outbox stopped: %w", what, err)
		}
	}
}

// pause waits d on the outbox's clock; false when the outbox stopped first.
func (o *Outbox) pause(d time.Duration) bool {
	due := make(chan struct{})
	t := o.clock.AfterFunc(d, func() { close(due) })
	select {
	case <-due:
		return true
	case <-o.done:
		t.Stop()
		return false
	}
}

// OrgDeleted follows the deletion of an organization, committed already:
// the store failed its queued messages and cancelled its jobs in the
// tombstone's own transaction, so that no crash or racing POST leaves one
// queued. A message being sent then is left to its answer, which the
// worker's close brings: an ack records it sent (it reached WhatsApp),
// anything else fails it as org_deleted. Memory follows the store here.
func (o *Outbox) OrgDeleted(org string) {
	now := o.clock.Now()
	c, err := o.store.OrgCounts(context.Background(), org, dayStart(now))
	if err != nil {
		// The counts stay as they were until the next restart reloads them.
		o.log.Error("reading a deleted organization's message counts failed", "org", org, "err", err)
	}
	o.mu.Lock()
	for id, j := range o.jobs {
		if j.Org == org {
			delete(o.jobs, id)
		}
	}
	var failed int
	if err == nil {
		cur := o.counts.of(org, now)
		failed = max(0, c.FailedToday-cur.FailedToday)
		*cur = c
	}
	depth := o.counts.of(org, now).Queued
	o.mu.Unlock()
	o.metrics.SetOutboxDepth(org, depth)
	if failed > 0 {
		o.log.Info("organization deleted: its unsent messages failed", "org", org, "messages", failed)
	}
	o.kickJobs()
}
