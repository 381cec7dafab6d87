package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// NumberCheck is WhatsApp's answer to whether a number has an account.
type NumberCheck struct {
	Phone      string // E.164 digits
	OnWhatsApp bool
	JID        string // empty when not on WhatsApp
	CheckedAt  time.Time
}

// ReasonNotOnWhatsApp is the failure of a message whose number has no
// WhatsApp account: it was never sent.
const ReasonNotOnWhatsApp = "not_on_whatsapp"

// ErrNotConnected is a check that needs WhatsApp while the organization has
// no connected worker.
var ErrNotConnected = errors.New("the organization has no connected worker to ask WhatsApp")

// ErrNoAnswer is a check WhatsApp or the worker did not answer (a timeout,
// a disconnect): nothing is known about the numbers.
var ErrNoAnswer = errors.New("WhatsApp gave no answer to the check")

// checkTimeout bounds one usync query.
const checkTimeout = 30 * time.Second

// checkBatch is the most numbers one check asks about: one usync query.
const checkBatch = 50

// Checks are usync queries, not messages: they have their own pace, so that
// checking a campaign's numbers does not spend its per_minute sends, and a
// modest one (a query of up to checkBatch numbers a second at most, 60 a
// minute), since bursts of contact lookups are what number scrapers send.
const (
	checkInterval   = time.Second
	checksPerMinute = 60
)

func newCheckPacer(rnd func(min, max time.Duration) time.Duration) *pacer {
	return newPacer(checkInterval, checksPerMinute, [2]time.Duration{}, rnd)
}

// Fresh reports whether c still holds at now: checked less than ttl ago.
// An answer dated after now (a clock stepped back) is not trusted.
func Fresh(c NumberCheck, now time.Time, ttl time.Duration) bool {
	return !c.CheckedAt.IsZero() && !c.CheckedAt.After(now) && now.Sub(c.CheckedAt) < ttl
}

// numberStep is what a message's number means for its next step.
type numberStep int

const (
	numberSend numberStep = iota // send it
	numberAsk                    // ask WhatsApp first
	numberFail                   // fail it: not on WhatsApp
)

// numberDecision decides a message's step from its number's cached answer
// (found false: none). Only a first send is checked: a message attempted
// before may already have reached WhatsApp.
func numberDecision(attempts int, c NumberCheck, found bool, now time.Time, ttl time.Duration) numberStep {
	switch {
	case attempts > 0:
		return numberSend
	case !found || !Fresh(c, now, ttl):
		return numberAsk
	case c.OnWhatsApp:
		return numberSend
	}
	return numberFail
}

// errWoken is a paced check cut short by a wake-up; nothing was asked.
var errWoken = errors.New("check interrupted before its turn")

// ask asks org's worker about phones, checkBatch at a time, each query
// paced by the organization's check pacer (sleep waits; false: cut short),
// and caches the answers. A phone the worker did not answer for fails the
// whole call: no answer is never "not on WhatsApp".
func (o *Outbox) ask(ctx context.Context, org string, w Worker, phones []string, sleep func(time.Duration) bool) ([]NumberCheck, error) {
	out := make([]NumberCheck, 0, len(phones))
	for start := 0; start < len(phones); start += checkBatch {
		batch := phones[start:min(start+checkBatch, len(phones))]
		o.mu.Lock()
		p := o.senderLocked(org).checks
		wait, cancel := p.reserve(o.clock.Now())
		o.mu.Unlock()
		if !sleep(wait) {
			o.mu.Lock()
			cancel()
			o.mu.Unlock()
			return nil, errWoken
		}
		cctx, cancelCheck := context.WithTimeout(ctx, checkTimeout)
		answers, err := w.CheckNumbers(cctx, batch)
		cancelCheck()
		now := o.clock.Now()
		o.mu.Lock()
		p.sent(now)
		o.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: %d numbers: %w", ErrNoAnswer, len(batch), err)
		}
		// state.db keeps milliseconds: an answer reads the same fresh
		// as from the cache.
		checks, err := answered(batch, answers, now.Truncate(time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		if err := o.wrote(org, o.store.SaveNumberChecks(context.WithoutCancel(ctx), checks)); err != nil {
			return nil, fmt.Errorf("cache number checks: %w", err)
		}
		out = append(out, checks...)
	}
	return out, nil
}

// answered pairs each asked phone with its answer, in the order asked.
func answered(asked []string, answers []*pb.NumberCheck, at time.Time) ([]NumberCheck, error) {
	byPhone := make(map[string]*pb.NumberCheck, len(answers))
	for _, a := range answers {
		byPhone[a.Phone] = a
	}
	out := make([]NumberCheck, len(asked))
	for i, p := range asked {
		a, ok := byPhone[p]
		if !ok {
			return nil, fmt.Errorf("the worker gave no answer for %s", p)
		}
		out[i] = NumberCheck{Phone: p, OnWhatsApp: a.OnWhatsapp, JID: a.Jid, CheckedAt: at}
		if !a.OnWhatsapp {
			out[i].JID = ""
		}
	}
	return out, nil
}

// CheckNumbers answers for each of phones (valid, distinct) in order:
// cached answers still fresh as they are, the rest asked of org's connected
// worker, paced, and cached. ErrNotConnected when some phone needs asking
// and org has no connected worker.
func (o *Outbox) CheckNumbers(ctx context.Context, org string, phones []string) ([]NumberCheck, error) {
	cached, err := o.store.NumberChecks(ctx, phones)
	if err != nil {
		return nil, err
	}
	now := o.clock.Now()
	var unknown []string
	for _, p := range phones {
		if c, ok := cached[p]; !ok || !Fresh(c, now, o.cfg.CheckTTL.Duration) {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		w, ok := o.fleet.Sender(org)
		if !ok {
			return nil, ErrNotConnected
		}
		got, err := o.ask(ctx, org, w, unknown, func(d time.Duration) bool { return o.sleepCtx(ctx, d) })
		if err != nil {
			return nil, err
		}
		for _, c := range got {
			cached[c.Phone] = c
		}
		o.log.Info("numbers checked with WhatsApp", "org", org, "asked", len(unknown), "cached", len(phones)-len(unknown))
	}
	out := make([]NumberCheck, len(phones))
	for i, p := range phones {
		out[i] = cached[p]
	}
	return out, nil
}

// sleepCtx waits d on the outbox's clock; false when ctx ended or the
// outbox stopped first.
func (o *Outbox) sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	done := make(chan struct{})
	t := o.clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-ctx.Done():
	case <-o.done:
	}
	return false
}

// checkFirst runs before m's pacing turn: it fails m at once when its number
// is known not to be on WhatsApp, or asks WhatsApp about its number (with
// the rest of its broadcast's unchecked numbers, one batch) when no fresh
// answer is cached. It returns true when m may be sent now; false means the
// loop decides again from the start.
func (s *sender) checkFirst(ctx context.Context, m Message, now time.Time) bool {
	o := s.o
	ttl := o.cfg.CheckTTL.Duration
	if !o.cfg.CheckNumbers {
		return true
	}
	cached, err := o.store.NumberChecks(ctx, []string{m.To})
	if err != nil {
		o.log.Error("reading cached number checks failed; retrying", "org", s.org, "err", err)
		s.sleep(time.Second)
		return false
	}
	c, found := cached[m.To]
	switch numberDecision(m.Attempts, c, found, now, ttl) {
	case numberSend:
		return true
	case numberFail:
		s.fail(context.WithoutCancel(ctx), m, ReasonNotOnWhatsApp, now)
		o.log.Info("a message's number is not on WhatsApp: failed without a send", "org", s.org, "message", m.ID, "broadcast", m.Broadcast)
		return false
	}
	w, ok := o.fleet.Sender(s.org)
	if !ok {
		// Disconnected meanwhile: OrgStatus wakes the loop to end it.
		s.sleep(time.Second)
		return false
	}
	phones := []string{m.To}
	if m.Broadcast != "" {
		more, err := o.store.UncheckedRecipients(ctx, m.Broadcast, now.Add(-ttl), checkBatch)
		if err != nil {
			o.log.Error("listing a broadcast's unchecked numbers failed; retrying", "org", s.org, "broadcast", m.Broadcast, "err", err)
			s.sleep(time.Second)
			return false
		}
		for _, p := range more {
			if p != m.To && len(phones) < checkBatch {
				phones = append(phones, p)
			}
		}
	}
	got, err := o.ask(ctx, s.org, w, phones, s.sleep)
	switch {
	case errors.Is(err, errWoken):
	case err != nil:
		// Like a send without an answer: the message stays queued and the
		// sender pauses; the number is not marked either way.
		wait := retryWait(s.noAnswer(o.clock.Now()))
		o.log.Warn("checking numbers with WhatsApp had no answer; retrying", "org", s.org, "message", m.ID,
			"numbers", len(phones), "err", err, "retry_in", wait.String())
	default:
		off := 0
		for _, c := range got {
			if !c.OnWhatsApp {
				off++
			}
		}
		s.answered()
		o.log.Info("numbers checked with WhatsApp before their first send", "org", s.org, "broadcast", m.Broadcast,
			"numbers", len(got), "not_on_whatsapp", off)
	}
	return false
}
