package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/wait"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// recipients are the emulated contacts the stream writes to: few, so the
// emulator's peer stores stay small, and shared by every organization.
var recipients = func() []string {
	out := make([]string, 8)
	for i := range out {
		out[i] = fmt.Sprintf("5730012600%02d", i)
	}
	return out
}()

// acceptTimeout bounds retrying one send while the API is down: a
// supervisor restart takes a few seconds, SIGTERM's worker stops included.
const acceptTimeout = 90 * time.Second

// repeatOdds is how often the stream repeats an accepted key on purpose,
// with the same recipient and text: the answer must be the first message.
const repeatOdds = 0.05

// Sender is the steady stream of sends: every message has its own
// idempotency key and text, and is recorded once the API accepted it.
type Sender struct {
	d *Driver

	mu  sync.Mutex
	rng *rand.Rand
	n   int
}

// NewSender makes the stream; seed picks organizations and recipients.
func (d *Driver) NewSender(seed uint64) *Sender {
	return &Sender{d: d, rng: rand.New(rand.NewPCG(seed, 0x5e4d))}
}

// Run sends one message every interval to a random organization until
// stop closes or ctx ends; it returns an error only for a send that cannot
// be explained by the disruptions (a refusal, a key answered with another
// message). A send in flight when stop closes still waits for its answer:
// cut off, it may have been committed without being recorded.
func (s *Sender) Run(ctx context.Context, stop <-chan struct{}, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		o := s.d.orgs[s.rng.IntN(len(s.d.orgs))]
		repeat := s.rng.Float64() < repeatOdds
		pick := s.rng.Int()
		s.mu.Unlock()
		var err error
		if repeat {
			err = s.repeat(ctx, pick)
		} else {
			err = s.Send(ctx, o)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// Send queues one new message to o.
func (s *Sender) Send(ctx context.Context, o Org) error {
	s.mu.Lock()
	s.n++
	n := s.n
	to := recipients[s.rng.IntN(len(recipients))]
	s.mu.Unlock()
	m := Message{Org: o.ID, To: to, Key: fmt.Sprintf("soak-%d", n), Text: fmt.Sprintf("soak message %d from %s", n, o.ID)}
	body, err := s.accept(ctx, m)
	if err != nil {
		return err
	}
	if body.ID == "" || body.WAMessageID == "" || body.To != to {
		return fmt.Errorf("message %s accepted as %+v", m.Key, body)
	}
	m.ID, m.WAID = body.ID, body.WAMessageID
	s.d.journal.accepted(m)
	return nil
}

// repeat sends an accepted message again under its key.
func (s *Sender) repeat(ctx context.Context, pick int) error {
	all := s.d.journal.Messages()
	if len(all) == 0 {
		return nil
	}
	m := all[pick%len(all)]
	body, err := s.accept(ctx, m)
	if err != nil {
		return err
	}
	if body.ID != m.ID || body.WAMessageID != m.WAID {
		return fmt.Errorf("key %s answered message %s (%s), first %s (%s): a second message", m.Key, body.ID, body.WAMessageID, m.ID, m.WAID)
	}
	s.d.journal.repeated()
	return nil
}

// accept posts m until the API answers 202. A call that got no answer, or
// 503 while the supervisor boots, goes again with the same key: it may
// have been committed before the answer was lost.
func (s *Sender) accept(ctx context.Context, m Message) (statusapi.MessageBody, error) {
	var body statusapi.MessageBody
	first := true
	err := wait.For(ctx, acceptTimeout, "the API to accept message "+m.Key, func() error {
		if !first {
			s.d.journal.retried()
		}
		first = false
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		var err error
		body, err = s.d.rig.API.Send(cctx, m.Org, m.To, m.Text, m.Key)
		var ae *apiclient.APIError
		if errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable {
			return wait.Fatal(fmt.Errorf("send %s to %s: %w", m.Key, m.Org, err))
		}
		return err
	})
	return body, err
}
