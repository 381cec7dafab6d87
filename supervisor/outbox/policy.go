package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/supervisor/backoff"
)

// pacer decides when an organization may send next: min_interval after its
// previous send, the per-minute token bucket (one token at a time, so no
// minute ever holds more than per_minute sends), and a random jitter on top.
// It takes the time as a parameter.
type pacer struct {
	minInterval time.Duration
	bucket      *rate.Limiter
	jitter      [2]time.Duration
	// rand picks a duration in [min, max].
	rand     func(min, max time.Duration) time.Duration
	lastSent time.Time
	// extra is the jitter of the next send, drawn once per send: a
	// wake-up before it must not draw again (that would favour short ones).
	extra time.Duration
	drawn bool
}

func newPacer(minInterval time.Duration, perMinute int, jitter [2]time.Duration, rnd func(min, max time.Duration) time.Duration) *pacer {
	return &pacer{
		minInterval: minInterval,
		bucket:      rate.NewLimiter(rate.Every(time.Minute/time.Duration(perMinute)), 1),
		jitter:      jitter,
		rand:        rnd,
	}
}

// reserve takes the next send's turn at now and returns how long to wait
// for it; cancel gives the turn back when the send does not happen.
func (p *pacer) reserve(now time.Time) (wait time.Duration, cancel func()) {
	if !p.drawn {
		p.extra, p.drawn = p.rand(p.jitter[0], p.jitter[1]), true
	}
	r := p.bucket.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	if !p.lastSent.IsZero() {
		wait = max(wait, p.lastSent.Add(p.minInterval).Sub(now))
	}
	return wait + p.extra, func() { r.CancelAt(now) }
}

// sent records a send at at.
func (p *pacer) sent(at time.Time) {
	if at.After(p.lastSent) {
		p.lastSent = at
	}
	p.drawn = false
}

// restore resumes after a restart from the last send at at: min_interval
// counts from it, and it spent the bucket's token then. A send recorded
// after now (the wall clock was stepped back, or state.db came from a host
// whose clock ran ahead) counts as sent now: trusted as it is, it would hold
// the organization's sending back until that time came round.
func (p *pacer) restore(at, now time.Time) {
	if at.IsZero() {
		return
	}
	if at.After(now) {
		at = now
	}
	p.sent(at)
	p.bucket.ReserveN(at, 1)
}

// Outcome is what a send attempt's answer means.
type Outcome int

const (
	// OutcomeSent: the server acked the message.
	OutcomeSent Outcome = iota
	// OutcomeRestricted: 463, the new-chat restriction. The message and
	// the others to new contacts wait restrict_backoff; known contacts go on.
	OutcomeRestricted
	// OutcomeFailed: refused for good (479 and other codes).
	OutcomeFailed
	// OutcomeUnknown: no answer (not connected, a timeout, a crash). The
	// message goes back in line and is sent again with the same ID, after
	// the worker reconnects or a backoff: never hot.
	OutcomeUnknown
)

// restrictedCode is WhatsApp's new-chat restriction ("reach-out timelock").
const restrictedCode = 463

// classify reads a SendText answer.
func classify(resp *pb.SendTextResponse, err error) (Outcome, string) {
	switch {
	case err != nil:
		return OutcomeUnknown, ""
	case resp.GetServerError() == restrictedCode:
		return OutcomeRestricted, ""
	case resp.GetServerError() != 0:
		return OutcomeFailed, fmt.Sprintf("server_error_%d", resp.GetServerError())
	}
	return OutcomeSent, ""
}

// maxAttempts bounds the sends of one message without an answer (the
// worker crashed during it, the connection dropped, whatsmeow failed): the
// message then fails with reason no_answer instead of holding every later
// message of its organization back until it expires.
const maxAttempts = 5

// giveUp reports whether a message sent attempts times, the last without
// an answer, is failed rather than sent again.
func giveUp(attempts int) bool { return attempts >= maxAttempts }

// retryWait is the pause after the attempt-th send in a row without an
// answer while the worker still counts as connected.
func retryWait(attempt int) time.Duration {
	return backoff.Delay(time.Second, time.Minute, attempt)
}

// JobView is what the broadcast scheduler knows of a job.
type JobView struct {
	ID         string
	Org        string
	Seq        int64
	Status     JobStatus
	ProgressAt time.Time
}

// JobChange moves one job.
type JobChange struct {
	ID     string
	Status JobStatus
}

// planJobs decides which broadcasts send, from jobs sorted oldest first.
// A sending job without progress for stalledAfter is reported stalled and
// gives its turn up; sending jobs beyond maxJobs (the limit was lowered
// across a restart) go back to queued, the newest first. Then the oldest
// queued jobs, and after them the stalled ones, take the free turns while
// their organization can send (connected and not held by a 463): a stalled
// job stays stalled until what stopped it is over.
func planJobs(jobs []JobView, maxJobs int, canSend func(org string) bool, now time.Time, stalledAfter time.Duration) []JobChange {
	var changes []JobChange
	var sending []JobView
	for _, j := range jobs {
		if j.Status != JobSending {
			continue
		}
		if now.Sub(j.ProgressAt) >= stalledAfter {
			changes = append(changes, JobChange{ID: j.ID, Status: JobStalled})
			continue
		}
		sending = append(sending, j)
	}
	for i := len(sending) - 1; i >= maxJobs; i-- {
		changes = append(changes, JobChange{ID: sending[i].ID, Status: JobQueued})
	}
	n := min(len(sending), maxJobs)
	for _, wanted := range []JobStatus{JobQueued, JobStalled} {
		for _, j := range jobs {
			if n >= maxJobs {
				return changes
			}
			if j.Status == wanted && canSend(j.Org) {
				changes = append(changes, JobChange{ID: j.ID, Status: JobSending})
				n++
			}
		}
	}
	return changes
}

// ErrNotFound answers a message or broadcast that the organization does not have.
var ErrNotFound = errors.New("not found")

// ErrUnknownOrg refuses a message or broadcast for an organization that is
// not registered: never started, or deleted (a POST that raced the DELETE).
var ErrUnknownOrg = errors.New("organization is not registered")

// ReasonOrgDeleted fails the messages of a deleted organization.
const ReasonOrgDeleted = "org_deleted"

// RequeueOutcome decides what a message whose send had no known outcome
// becomes: back in line, or failed when nobody may send it any more (its
// organization was deleted, its broadcast cancelled).
func RequeueOutcome(orgRegistered, jobCancelled bool) (Status, string) {
	switch {
	case !orgRegistered:
		return Failed, ReasonOrgDeleted
	case jobCancelled:
		return Failed, "cancelled"
	}
	return Queued, ""
}

// JobFinished reports whether a job is done: it is open and none of its
// messages is pending any more. The store asks it in the transaction of
// each message that ends, so no crash leaves a job open with nothing to send.
func JobFinished(status JobStatus, anyPending bool) bool {
	return status.Active() && !anyPending
}

// ProgressEvery spaces a job's broadcast_progress events.
const ProgressEvery = 10 * time.Second

// ProgressEventDue reports whether a job whose last broadcast_progress
// event was at last (zero: none yet) may have another at at.
func ProgressEventDue(last, at time.Time) bool {
	return last.IsZero() || !at.Before(last.Add(ProgressEvery))
}

// RecipientsHash names a broadcast's recipient list: sorted and without
// duplicates, so the same numbers in another order are the same list.
// A reused idempotency key returns the first job only for the same list.
func RecipientsHash(recipients []string) string {
	to := slices.Clone(recipients)
	slices.Sort(to)
	to = slices.Compact(to)
	sum := sha256.Sum256([]byte(strings.Join(to, "\n")))
	return hex.EncodeToString(sum[:])
}
