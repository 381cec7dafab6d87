package check

import (
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/driver"
	"github.com/wa-sidecar/wa-sidecar/soak/rig"
	"github.com/wa-sidecar/wa-sidecar/soak/wait"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// drainTimeout bounds the wait for the last queued messages: a backlog of
// a few hundred at messages.min_interval 200 ms.
const drainTimeout = 3 * time.Minute

// noAnswerDisruptions is how many disruptions a message's organization must
// have gone through for it to fail with no_answer: the outbox gives up
// after five attempts without an answer, and only a disruption leaves a
// send unanswered against the emulator.
const noAnswerDisruptions = 5

// MessageFigures count the accepted messages by how they ended.
type MessageFigures struct {
	Accepted, Sent, Delivered, Read int
	Failed                          map[string]int // by reason
	// Resends are deliveries of an ID the phone had already sent: the
	// same message again after a crash, which the recipient shows once.
	Resends int
}

// Messages waits until every accepted message has a final status, then
// checks that none was lost or doubled: the supervisor lists exactly the
// accepted messages; each ended sent, delivered or read, or failed for a
// reason the schedule explains; and the phone sent nothing else, each ID
// at most once as recipients see it, every sent one exactly once.
// It also returns the messages as the supervisor lists them at the end.
func Messages(ctx context.Context, r *rig.Rig, orgs []driver.Org, j *driver.Journal) (MessageFigures, []statusapi.MessageBody, []string) {
	fig := MessageFigures{Failed: map[string]int{}}
	accepted := map[string][]driver.Message{}
	for _, m := range j.Messages() {
		accepted[m.Org] = append(accepted[m.Org], m)
		fig.Accepted++
	}
	listed := map[string]map[string]statusapi.MessageBody{}
	err := wait.For(ctx, drainTimeout, "every accepted message to reach a final status", func() error {
		pending := 0
		for _, o := range orgs {
			l, err := list(ctx, r, o.ID)
			if err != nil {
				return err
			}
			listed[o.ID] = l
			for _, m := range l {
				if m.Status == "queued" || m.Status == "sending" {
					pending++
				}
			}
		}
		if pending > 0 {
			return fmt.Errorf("%d still queued or sending", pending)
		}
		return nil
	})
	if err != nil {
		return fig, nil, []string{fmt.Sprintf("messages: %v", err)}
	}
	var out []string
	var all []statusapi.MessageBody
	for _, o := range orgs {
		out = append(out, ended(listed[o.ID], accepted[o.ID], j, &fig)...)
		out = append(out, phoneView(ctx, r, o, accepted[o.ID], listed[o.ID], &fig)...)
		for _, m := range listed[o.ID] {
			all = append(all, m)
		}
	}
	return fig, all, out
}

// list pages through every message of org.
func list(ctx context.Context, r *rig.Rig, org string) (map[string]statusapi.MessageBody, error) {
	out := map[string]statusapi.MessageBody{}
	after := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		page, err := r.API.Messages(cctx, org, "", 500, after)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list messages of %s: %w", org, err)
		}
		for _, m := range page.Messages {
			out[m.ID] = m
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// ended checks one organization's messages against what was accepted.
func ended(listed map[string]statusapi.MessageBody, accepted []driver.Message, j *driver.Journal, fig *MessageFigures) []string {
	var out []string
	if len(listed) != len(accepted) {
		out = append(out, fmt.Sprintf("messages: the supervisor lists %d messages, %d were accepted", len(listed), len(accepted)))
	}
	for _, a := range accepted {
		m, ok := listed[a.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("messages: %s (%s, key %s) was accepted and is lost", a.ID, a.Org, a.Key))
			continue
		case m.WAMessageID != a.WAID || m.To != a.To:
			out = append(out, fmt.Sprintf("messages: %s changed: now %s to %s, accepted as %s to %s", a.ID, m.WAMessageID, m.To, a.WAID, a.To))
		}
		switch m.Status {
		case "sent":
			fig.Sent++
		case "delivered":
			fig.Delivered++
		case "read":
			fig.Read++
		case "failed":
			fig.Failed[m.Reason]++
			if why := unexplained(m, a.Org, j); why != "" {
				out = append(out, fmt.Sprintf("messages: %s (%s) failed with reason %q: %s", a.ID, a.Org, m.Reason, why))
			}
		default:
			out = append(out, fmt.Sprintf("messages: %s (%s) ended %s", a.ID, a.Org, m.Status))
		}
	}
	return out
}

// unexplained says why the schedule cannot explain a failure, or "" when
// it can. No schedule event cancels, deletes, arms a send error, or lasts
// as long as messages.expire_after; only no_answer can follow from
// disruptions, and only from enough of them.
func unexplained(m statusapi.MessageBody, org string, j *driver.Journal) string {
	if m.Reason != "no_answer" {
		return "nothing in the schedule causes it"
	}
	if m.QueuedAt == nil || m.FailedAt == nil {
		return "no queued_at or failed_at"
	}
	if n := j.Disruptions(org, *m.QueuedAt, *m.FailedAt); n < noAnswerDisruptions {
		return fmt.Sprintf("its organization went through %d disruptions while it waited, fewer than the %d attempts the outbox makes", n, noAnswerDisruptions)
	}
	return ""
}

// phoneView checks what org's phone sent against its accepted messages.
func phoneView(ctx context.Context, r *rig.Rig, o driver.Org, accepted []driver.Message, listed map[string]statusapi.MessageBody, fig *MessageFigures) []string {
	byWAID := map[string]driver.Message{}
	for _, m := range accepted {
		byWAID[m.WAID] = m
	}
	raw, err := r.Phone.Sent(ctx, o.Phone, true)
	if err != nil {
		return []string{fmt.Sprintf("phone %s: %v", o.Phone, err)}
	}
	view, err := r.Phone.Sent(ctx, o.Phone, false)
	if err != nil {
		return []string{fmt.Sprintf("phone %s: %v", o.Phone, err)}
	}
	var out []string
	for _, d := range raw {
		if m, ok := byWAID[d.ID]; !ok || m.To != d.To || m.Text != d.Text {
			out = append(out, fmt.Sprintf("messages: %s's phone sent %q to %s as %s, which is none of its accepted messages", o.ID, d.Text, d.To, d.ID))
		}
	}
	fig.Resends += len(raw) - len(view)
	// The view lists each (recipient, ID) once; one ID under two
	// recipients would be a message doubled.
	shown := map[string]int{}
	for _, d := range view {
		shown[d.ID]++
	}
	for id, n := range shown {
		if n > 1 {
			out = append(out, fmt.Sprintf("messages: recipients of %s show %s %d times", o.ID, id, n))
		}
	}
	for _, m := range listed {
		if (m.Status == "sent" || m.Status == "delivered" || m.Status == "read") && shown[m.WAMessageID] != 1 {
			out = append(out, fmt.Sprintf("messages: %s (%s) is %s but its recipient shows it %d times", m.ID, o.ID, m.Status, shown[m.WAMessageID]))
		}
	}
	return out
}
