package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

// sendTimeout bounds one send, typing and a media upload included.
const sendTimeout = 2 * time.Minute

// sender is one organization's sending loop. At most one goroutine runs it,
// and only while the organization is connected.
type sender struct {
	o   *Outbox
	org string
	// The fields below are guarded by o.mu.
	connected  bool
	running    bool
	wake       chan struct{}
	pace       *pacer
	checks     *pacer // usync queries asking whether numbers are on WhatsApp
	restricted time.Time
	// unknown counts sends in a row without an answer; notBefore holds the
	// next attempt back after one, whatever wakes the loop.
	unknown   int
	notBefore time.Time
	// jid is the connected device; phone the number whose first link
	// the warm-up counts from, once the store told.
	jid   string
	phone string
	// heldUntil is the end of the daily-limit hold last logged.
	heldUntil time.Time
}

func (o *Outbox) senderLocked(org string) *sender {
	s := o.senders[org]
	if s == nil {
		s = &sender{o: o, org: org, wake: make(chan struct{}, 1),
			pace:   newPacer(o.cfg.MinInterval.Duration, o.cfg.PerMinute, durations(o.cfg.Jitter), o.rand),
			checks: newCheckPacer(o.rand)}
		o.senders[org] = s
	}
	return s
}

func durations(r [2]config.Duration) [2]time.Duration {
	return [2]time.Duration{r[0].Duration, r[1].Duration}
}

func (s *sender) restore(st SenderState, now time.Time) {
	s.restricted = st.RestrictedUntil
	s.pace.restore(st.LastSentAt, now)
}

func (s *sender) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// OrgStatus tells the outbox an organization's status and, while it is
// connected, its device JID: its sender runs while it is connected and
// stops at its next step otherwise.
func (o *Outbox) OrgStatus(org string, connected bool, jid string) {
	o.mu.Lock()
	s := o.senderLocked(org)
	s.connected = connected
	if connected {
		s.jid = jid
	}
	start := connected && !s.running && !o.closed
	if start {
		s.running = true
		o.wg.Add(1)
	}
	o.mu.Unlock()
	if start {
		go s.run()
	} else {
		s.wakeUp()
	}
	o.kickJobs()
}

func (o *Outbox) wake(org string) {
	o.mu.Lock()
	s := o.senders[org]
	o.mu.Unlock()
	if s != nil {
		s.wakeUp()
	}
}

// keepRunning reports whether the loop goes on; false ends it for good.
func (s *sender) keepRunning() bool {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if s.connected && !s.o.closed {
		return true
	}
	s.running = false
	return false
}

// sleep waits d, or until woken or the outbox closes; false if it did not
// wait the whole d.
func (s *sender) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := s.o.clock.AfterFunc(d, s.wakeUp)
	defer t.Stop()
	start := s.o.clock.Now()
	select {
	case <-s.wake:
	case <-s.o.done:
		return false
	}
	return !s.o.clock.Now().Before(start.Add(d))
}

func (s *sender) run() {
	defer s.o.wg.Done()
	o := s.o
	ctx := o.ctx
	for s.keepRunning() {
		now := o.clock.Now()
		o.mu.Lock()
		restricted := now.Before(s.restricted)
		held := s.notBefore.Sub(now)
		jid := s.jid
		o.mu.Unlock()
		if held > 0 {
			s.sleep(held)
			continue
		}
		if !s.linkNumber(ctx, jid, now) {
			s.sleep(time.Second)
			continue
		}
		win := o.window(s.org, now)
		if win.Full {
			// Nothing more today, whatever wakes the loop: each wake
			// decides again and sleeps again.
			s.limitReached(win)
			s.sleep(win.Next.Sub(now))
			continue
		}
		jobs := o.activeJobs(s.org)
		if win.Quiet {
			// Quiet hours: broadcasts wait, single messages go.
			jobs = nil
		}
		m, ok, err := o.store.NextMessage(ctx, s.org, jobs, restricted, now)
		if err != nil {
			o.log.Error("reading the outbox failed; retrying", "org", s.org, "err", err)
			s.sleep(time.Second)
			continue
		}
		if !ok {
			wait := time.Hour
			if restricted {
				wait = s.restricted.Sub(now)
			}
			if win.Quiet {
				wait = min(wait, win.Next.Sub(now))
			}
			s.sleep(wait)
			if restricted {
				s.liftRestriction()
			}
			continue
		}
		if !s.checkFirst(ctx, m, now) {
			continue
		}
		o.mu.Lock()
		wait, cancel := s.pace.reserve(now)
		o.mu.Unlock()
		if !s.sleep(wait) {
			// Woken early: a disconnect, a message with priority, a
			// restriction. Decide again from the start.
			o.mu.Lock()
			cancel()
			o.mu.Unlock()
			continue
		}
		if !s.keepRunning() {
			o.mu.Lock()
			cancel()
			o.mu.Unlock()
			return
		}
		s.send(ctx, m, cancel)
	}
}

// limitReached logs the daily limit once per hold.
func (s *sender) limitReached(w Window) {
	s.o.mu.Lock()
	first := !w.Next.Equal(s.heldUntil)
	s.heldUntil = w.Next
	s.o.mu.Unlock()
	if first {
		s.o.log.Info("daily limit reached: the rest waits for the next local day", "org", s.org,
			"limit", w.Limit, "sent", w.Sent, "until", w.Next.UTC().Format(time.RFC3339))
	}
}

// liftRestriction clears the restriction once it ended.
func (s *sender) liftRestriction() {
	o := s.o
	o.mu.Lock()
	ended := !s.restricted.IsZero() && !o.clock.Now().Before(s.restricted)
	if ended {
		s.restricted = time.Time{}
	}
	o.mu.Unlock()
	if ended {
		o.metrics.SetSendRestricted(s.org, false)
		o.log.Info("new-chat restriction over: messages to new contacts go again", "org", s.org)
		o.kickJobs()
	}
}

// send makes one attempt: committed as sending first, so that a crash
// during it sends again with the same ID. unpace gives the pacing turn
// back when the message is not sent after all.
func (s *sender) send(ctx context.Context, m Message, unpace func()) {
	o := s.o
	w, ok := o.fleet.Sender(s.org)
	if !ok {
		o.mu.Lock()
		unpace()
		o.mu.Unlock()
		return
	}
	started := o.clock.Now()
	still, err := o.store.MarkSending(ctx, m, started)
	if err = o.wrote(s.org, err); err != nil {
		o.log.Error("marking a message sending failed; it stays queued", "org", s.org, "message", m.ID, "err", err)
		s.sleep(time.Second)
		return
	}
	if !still {
		o.mu.Lock()
		unpace()
		o.mu.Unlock()
		o.log.Debug("message cancelled or expired while it waited for its turn; not sent", "org", s.org, "message", m.ID)
		return
	}
	m.Attempts++
	typing := o.rand(o.cfg.Typing[0].Duration, o.cfg.Typing[1].Duration)
	sctx, cancel := context.WithTimeout(ctx, sendTimeout+typing)
	resp, err := s.deliver(sctx, w, m, typing)
	cancel()
	if errors.Is(err, ErrMediaMissing) {
		o.mu.Lock()
		unpace()
		o.mu.Unlock()
		s.fail(context.WithoutCancel(ctx), m, ReasonMediaMissing, o.clock.Now())
		o.log.Error("a media message's file is gone; failed without a send", "org", s.org, "message", m.ID, "media", m.Media, "err", err)
		return
	}
	now := o.clock.Now()
	o.mu.Lock()
	s.pace.sent(now)
	o.mu.Unlock()
	// The outcome is recorded even when the outbox is stopping: losing an
	// ack would send the message again.
	ctx = context.WithoutCancel(ctx)
	outcome, reason := classify(resp, err)
	if outcome != OutcomeUnknown {
		s.answered()
	}
	switch outcome {
	case OutcomeSent:
		s.sent(ctx, m, now, started)
	case OutcomeRestricted:
		// The refused message waits restrict_backoff itself, whatever
		// the contact: a known contact's message would otherwise be
		// picked again at once and resent at the pacing rate, holding
		// every later message back. The restriction is committed first:
		// a crash between the two then costs at most one more send of
		// this message after the restart, never sends to new contacts
		// during the restriction.
		until := now.Add(o.cfg.RestrictBackoff.Duration)
		o.settle(ctx, m, "restrict", func() error { return o.store.Restrict(ctx, s.org, until, now) })
		s.requeueUntil(ctx, m, now, until)
		o.mu.Lock()
		s.restricted = until
		o.mu.Unlock()
		o.metrics.SetSendRestricted(s.org, true)
		o.log.Warn("WhatsApp restricts new chats (463): messages to new contacts wait, known contacts go on",
			"org", s.org, "message", m.ID, "until", until.UTC().Format(time.RFC3339))
	case OutcomeFailed:
		s.fail(ctx, m, reason, now)
		o.log.Warn("WhatsApp refused a message", "org", s.org, "message", m.ID, "reason", reason)
	case OutcomeUnknown:
		if giveUp(m.Attempts) {
			s.fail(ctx, m, "no_answer", now)
			o.log.Warn("a message had no answer in every attempt; given up (it may have reached WhatsApp once)",
				"org", s.org, "message", m.ID, "attempts", m.Attempts, "err", err)
			return
		}
		wait := retryWait(s.noAnswer(now))
		o.log.Warn("a send had no answer; the message goes again with the same ID", "org", s.org,
			"message", m.ID, "attempt", m.Attempts, "err", err, "retry_in", wait.String())
		s.requeue(ctx, m, now)
	}
}

// sent records an ack; a message that left sending another way (its
// organization was deleted meanwhile) is not counted again.
func (s *sender) sent(ctx context.Context, m Message, now, started time.Time) {
	o := s.o
	var counted bool
	o.settle(ctx, m, "sent", func() (err error) {
		counted, err = o.store.MarkSent(ctx, m, now)
		return err
	})
	if counted {
		o.metrics.ObserveSend(now.Sub(started))
		o.sentMessage(m)
	}
}

// fail gives m up. Only a failure this call committed is counted: a
// message that left sending another way was counted then, or, when a
// receipt showed it arrived, is counted as what it became.
func (s *sender) fail(ctx context.Context, m Message, reason string, now time.Time) {
	o := s.o
	var (
		got     Message
		changed bool
	)
	o.settle(ctx, m, "fail", func() (err error) {
		got, changed, err = o.store.Fail(ctx, m, reason, now)
		return err
	})
	switch {
	case changed:
		o.failedMessages([]Message{m}, reason)
	case got.Status == Delivered || got.Status == Read:
		o.sentMessage(got)
	}
}

// requeue puts m back in line.
func (s *sender) requeue(ctx context.Context, m Message, now time.Time) {
	s.requeueUntil(ctx, m, now, time.Time{})
}

// requeueUntil puts m back in line, not to go before notBefore. When it did
// not go back (its broadcast was cancelled or its organization deleted
// meanwhile, or a receipt showed it arrived), it is counted as what it
// became.
func (s *sender) requeueUntil(ctx context.Context, m Message, now, notBefore time.Time) {
	o := s.o
	var got Message
	o.settle(ctx, m, "requeue", func() (err error) {
		got, err = o.store.Requeue(ctx, m, now, notBefore)
		return err
	})
	switch got.Status {
	case Failed:
		o.failedMessages([]Message{got}, got.Reason)
	case Delivered, Read:
		o.sentMessage(got)
	}
}

// settle commits a message's outcome, retrying while the store refuses:
// losing it would send the message again.
func (o *Outbox) settle(ctx context.Context, m Message, what string, commit func() error) {
	for attempt := 1; ; attempt++ {
		err := o.wrote(m.Org, commit())
		if err == nil {
			return
		}
		o.log.Error("recording a message's outcome failed; retrying", "org", m.Org, "message", m.ID, "step", what, "err", err)
		select {
		case <-time.After(retryWait(attempt)):
		case <-o.done:
			return
		}
	}
}

// noAnswer counts a send without an answer and holds the next attempt
// back; it returns the count.
func (s *sender) noAnswer(now time.Time) int {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.unknown++
	s.notBefore = now.Add(retryWait(s.unknown))
	return s.unknown
}

func (s *sender) answered() {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.unknown, s.notBefore = 0, time.Time{}
}

// Restricted returns until when org may not message new contacts (zero:
// not restricted).
func (o *Outbox) Restricted(org string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.senders[org]; s != nil && o.clock.Now().Before(s.restricted) {
		return s.restricted
	}
	return time.Time{}
}
