package outbox

import (
	"context"
	"strings"
	"time"

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
func (o *Outbox) Receipt(org string, waIDs []string, typ string, at time.Time) {
	status, ok := receiptStatus[typ]
	if !ok {
		return
	}
	if at.IsZero() {
		// A receipt without its time: now is the best known.
		at = o.clock.Now()
	}
	changed, err := o.store.Receipt(context.Background(), org, waIDs, status, at)
	if err != nil {
		o.log.Error("recording a receipt failed", "org", org, "err", err)
		return
	}
	for _, m := range changed {
		o.log.Debug("message "+string(status), "org", org, "message", m.ID)
	}
}

// Heard records a message the organization received: its text goes to the
// webhook as message_received (when webhook.incoming is on), and its sender
// becomes a known contact, so the new-chat restriction does not hold
// messages to them.
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
		if err := o.store.AddEvents(context.Background(), e); err != nil {
			o.log.Error("recording a received message for the webhook failed", "org", org, "err", err)
		}
	}
	if number == "" || server != "s.whatsapp.net" || (chatServer != "s.whatsapp.net" && chatServer != "lid") {
		return
	}
	if err := o.store.AddContact(context.Background(), org, number); err != nil {
		o.log.Error("remembering a contact failed", "org", org, "err", err)
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
