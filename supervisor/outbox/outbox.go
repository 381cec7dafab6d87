package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// Store is where messages and broadcasts are committed.
type Store interface {
	InsertMessage(ctx context.Context, m Message) (Message, bool, error)
	InsertBroadcast(ctx context.Context, b Broadcast, msgs []Message) (Broadcast, bool, error)
	Message(ctx context.Context, org, id string) (Message, error)
	Messages(ctx context.Context, org string, f Filter) ([]Message, error)
	NextMessage(ctx context.Context, org string, jobs []string, restricted bool, now time.Time) (Message, bool, error)
	MarkSending(ctx context.Context, m Message, at time.Time) (bool, error)
	MarkSent(ctx context.Context, m Message, at time.Time) (bool, error)
	Requeue(ctx context.Context, m Message, at, notBefore time.Time) (Message, error)
	Fail(ctx context.Context, m Message, reason string, at time.Time) (Message, bool, error)
	Receipt(ctx context.Context, org string, waIDs []string, status Status, at, now time.Time) ([]Message, error)
	AddContact(ctx context.Context, org, phone string) error
	Restrict(ctx context.Context, org string, until, at time.Time) error
	AddEvents(ctx context.Context, events ...webhook.Event) error
	Senders(ctx context.Context) (map[string]SenderState, error)
	ExpireQueued(ctx context.Context, before, now time.Time) ([]Message, error)
	RecoverSending(ctx context.Context, at time.Time) (int, []Message, error)
	OutboxCounts(ctx context.Context, dayStart time.Time) (map[string]state.Outbox, error)
	OrgCounts(ctx context.Context, org string, dayStart time.Time) (state.Outbox, error)
	Broadcast(ctx context.Context, org, id string) (Broadcast, error)
	Broadcasts(ctx context.Context, org string, limit int) ([]Broadcast, error)
	OpenJobs(ctx context.Context) ([]Broadcast, error)
	SetJobStatus(ctx context.Context, id string, status JobStatus, at time.Time) (bool, error)
	JobStatus(ctx context.Context, id string) (JobStatus, error)
	FinishDrained(ctx context.Context, at time.Time) error
	CancelBroadcast(ctx context.Context, org, id string, at time.Time) (Broadcast, []Message, error)
	SentSince(ctx context.Context, since time.Time) (map[string][]SentCount, error)
	LinkNumber(ctx context.Context, org, phone string, at time.Time) (time.Time, error)
	LinkedNumbers(ctx context.Context) (map[string]time.Time, error)
	NumberChecks(ctx context.Context, phones []string) (map[string]NumberCheck, error)
	SaveNumberChecks(ctx context.Context, checks []NumberCheck) error
	UncheckedRecipients(ctx context.Context, job string, freshSince time.Time, limit int) ([]string, error)
}

// SenderState is an organization's sending memory.
type SenderState struct {
	RestrictedUntil time.Time
	LastSentAt      time.Time
}

// Worker is the organization's worker, as far as sending goes.
type Worker interface {
	SendText(ctx context.Context, req *pb.SendTextRequest) (*pb.SendTextResponse, error)
	SendMedia(ctx context.Context, req *pb.SendMediaRequest) (*pb.SendTextResponse, error)
	CheckNumbers(ctx context.Context, phones []string) ([]*pb.NumberCheck, error)
}

// Fleet hands out an organization's worker while it is connected.
type Fleet interface {
	Sender(org string) (Worker, bool)
}

// Metrics is what the outbox reports; *metrics.Metrics implements it.
type Metrics interface {
	SetOutboxDepth(org string, n int)
	MessageSent(org string)
	MessageFailed(org, reason string)
	ObserveSend(d time.Duration)
	SetBroadcasts(active, stalled int)
	SetSendRestricted(org string, restricted bool)
	// PersistError counts a commit state.db refused (disk full, I/O).
	PersistError()
}

// Options wire an Outbox.
type Options struct {
	Config  config.Messages
	Store   Store
	Fleet   Fleet
	Metrics Metrics
	// Media reads the files of media messages; nil: none are accepted.
	Media Media
	Clock clock.Clock
	Log   *slog.Logger
	// Rand picks a duration in [min, max] (jitter, typing); nil = uniform.
	Rand func(min, max time.Duration) time.Duration
	// Zone is messages.timezone (nil = UTC); OrgZones the [[org]] overrides.
	Zone     *time.Location
	OrgZones map[string]*time.Location
	// Countries are the organizations whose numbers are read with their
	// own default_country instead of Config.DefaultCountry.
	Countries map[string]string
}

// Outbox accepts messages and broadcasts and runs one sender per
// connected organization. All methods are safe for concurrent use.
type Outbox struct {
	cfg     config.Messages
	store   Store
	fleet   Fleet
	metrics Metrics
	media   Media
	clock   clock.Clock
	log     *slog.Logger
	rand    func(min, max time.Duration) time.Duration
	// sched is the schedule in messages.timezone; zones the [[org]]
	// timezone overrides.
	sched Schedule
	zones map[string]*time.Location
	// countries: see Options.Countries.
	countries map[string]string

	mu      sync.Mutex
	senders map[string]*sender
	jobs    map[string]*JobView
	counts  counts
	// daily is each organization's messages sent in its local day;
	// firstLink when its current number first linked (the warm-up).
	daily     map[string]*dayCount
	firstLink map[string]time.Time
	closed    bool
	// persist is the outcome of the last message write: a full disk or
	// an I/O error fails /readyz until a write goes through again.
	persist persistState

	jobsWake chan struct{}
	done     chan struct{}
	// ctx ends with Stop: a send in flight is cut off and its message
	// goes back in line.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// maxTextRunes is WhatsApp's limit on a text message.
const maxTextRunes = 65536

// New builds an outbox; Start loads its state and starts its loops.
func New(o Options) *Outbox {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Rand == nil {
		o.Rand = uniform
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Outbox{
		cfg: o.Config, store: o.Store, fleet: o.Fleet, metrics: o.Metrics, clock: o.Clock, media: o.Media, log: o.Log, rand: o.Rand,
		sched: NewSchedule(o.Config, o.Zone), zones: o.OrgZones, countries: o.Countries,
		senders: map[string]*sender{}, jobs: map[string]*JobView{},
		daily: map[string]*dayCount{}, firstLink: map[string]time.Time{},
		jobsWake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel,
	}
}

func uniform(min, max time.Duration) time.Duration {
	if max <= min {
		return min
	}
	return min + rand.N(max-min+1)
}

// Start puts messages a crash left sending back in line, loads the counts,
// restrictions and open broadcasts, and starts the expiry sweep and the
// broadcast scheduler.
func (o *Outbox) Start(ctx context.Context) error {
	now := o.clock.Now()
	n, failed, err := o.store.RecoverSending(ctx, now)
	if err != nil {
		return err
	}
	if n > 0 {
		o.log.Warn("messages left sending by a crash go again with the same WhatsApp ID; recipients see each once", "messages", n)
	}
	for _, m := range failed {
		o.metrics.MessageFailed(m.Org, m.Reason)
		o.log.Info("a message left pending by a crash belongs to a cancelled broadcast or a deleted organization: failed, not sent",
			"org", m.Org, "message", m.ID, "broadcast", m.Broadcast, "reason", m.Reason)
	}
	if err := o.store.FinishDrained(ctx, now); err != nil {
		return err
	}
	counts, err := o.store.OutboxCounts(ctx, dayStart(now))
	if err != nil {
		return err
	}
	senders, err := o.store.Senders(ctx)
	if err != nil {
		return err
	}
	sent, err := o.store.SentSince(ctx, now.Add(-48*time.Hour))
	if err != nil {
		return err
	}
	linked, err := o.store.LinkedNumbers(ctx)
	if err != nil {
		return err
	}
	if err := o.loadJobs(ctx); err != nil {
		return err
	}
	o.mu.Lock()
	if o.closed {
		// Stopped during the boot (SIGTERM while loading): Stop's Wait
		// has begun, and nothing may be added to what it waits for.
		o.mu.Unlock()
		return errStopped
	}
	o.counts = newCounts(now, counts)
	for org, q := range sent {
		sch := o.scheduleOf(org)
		start, _ := sch.LocalDay(now)
		o.daily[org] = &dayCount{day: start, n: sch.sentIn(q, now)}
	}
	for org, at := range linked {
		o.firstLink[org] = at
	}
	for org, st := range senders {
		o.senderLocked(org).restore(st, now)
		o.metrics.SetSendRestricted(org, now.Before(st.RestrictedUntil))
	}
	for org, c := range counts {
		o.metrics.SetOutboxDepth(org, c.Queued)
	}
	o.wg.Add(2)
	o.mu.Unlock()
	go o.sweep()
	go o.schedule()
	o.kickJobs()
	return nil
}

var errStopped = errors.New("outbox: stopped before it started")

// Stop ends the loops and waits for sends in flight.
func (o *Outbox) Stop() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	close(o.done)
	o.cancel()
	for _, s := range o.senders {
		s.wakeUp()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// InputError refuses a request for a field it names.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// SendRequest is a message to queue.
type SendRequest struct {
	To             string
	Text           string
	IdempotencyKey string
	// Media names an uploaded file; Text is then its optional caption.
	Media string
}

func checkText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return &InputError{Field: "text", Msg: "is empty"}
	case !utf8.ValidString(text):
		return &InputError{Field: "text", Msg: "is not valid UTF-8"}
	case utf8.RuneCountInString(text) > maxTextRunes:
		return &InputError{Field: "text", Msg: fmt.Sprintf("has %d characters; WhatsApp takes %d at most", utf8.RuneCountInString(text), maxTextRunes)}
	}
	return nil
}

func checkKey(key string) error {
	if len(key) > 128 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return &InputError{Field: "idempotency_key", Msg: "must be at most 128 printable ASCII characters without spaces"}
	}
	return nil
}

// Send commits a message and returns it; created is false when the
// idempotency key named a message accepted before, which is returned
// instead of a second one.
func (o *Outbox) Send(ctx context.Context, org string, r SendRequest) (Message, bool, error) {
	to, err := o.number(org, r.To)
	if err != nil {
		return Message{}, false, err
	}
	if err := o.checkContent(r.Text, r.Media); err != nil {
		return Message{}, false, err
	}
	if err := checkKey(r.IdempotencyKey); err != nil {
		return Message{}, false, err
	}
	now := o.clock.Now()
	m, created, err := o.store.InsertMessage(ctx, Message{ID: newID("msg_"), Org: org, To: to, Text: r.Text,
		WAID: newWAID(), IdempotencyKey: r.IdempotencyKey, QueuedAt: now, Media: r.Media})
	if err = o.wrote(org, err); err != nil {
		return Message{}, false, err
	}
	if !created {
		if m.To != to || m.Text != r.Text || m.Media != r.Media {
			return Message{}, false, &ConflictError{Msg: fmt.Sprintf("idempotency_key %q was used for message %s with another recipient, text or media", r.IdempotencyKey, m.ID)}
		}
		return m, false, nil
	}
	o.queued(org, 1)
	o.wake(org)
	return m, true, nil
}

// ConflictError refuses a request that contradicts an earlier one.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// Message returns one of org's messages.
func (o *Outbox) Message(ctx context.Context, org, id string) (Message, error) {
	return o.store.Message(ctx, org, id)
}

// Messages lists org's messages, newest first.
func (o *Outbox) Messages(ctx context.Context, org string, f Filter) ([]Message, error) {
	return o.store.Messages(ctx, org, f)
}

// BroadcastRequest is one text for many recipients.
type BroadcastRequest struct {
	Recipients     []string
	Text           string
	IdempotencyKey string
	// Media names an uploaded file; Text is then its optional caption.
	Media string
}

// CreateBroadcast commits a job and its messages (duplicates removed) in
// one transaction. Invalid numbers are refused, all named at once.
func (o *Outbox) CreateBroadcast(ctx context.Context, org string, r BroadcastRequest) (Broadcast, bool, error) {
	if err := o.checkContent(r.Text, r.Media); err != nil {
		return Broadcast{}, false, err
	}
	if err := checkKey(r.IdempotencyKey); err != nil {
		return Broadcast{}, false, err
	}
	recipients, err := o.recipients(org, r.Recipients)
	if err != nil {
		return Broadcast{}, false, err
	}
	switch {
	case len(recipients) == 0:
		return Broadcast{}, false, &InputError{Field: "recipients", Msg: "is empty"}
	case len(recipients) > o.cfg.MaxRecipients:
		return Broadcast{}, false, &InputError{Field: "recipients", Msg: fmt.Sprintf("has %d numbers; messages.max_recipients allows %d", len(recipients), o.cfg.MaxRecipients)}
	}
	now := o.clock.Now()
	b := Broadcast{ID: newID("bc_"), Org: org, Text: r.Text, IdempotencyKey: r.IdempotencyKey, Total: len(recipients), CreatedAt: now,
		RecipientsHash: RecipientsHash(recipients), Media: r.Media}
	msgs := make([]Message, len(recipients))
	for i, to := range recipients {
		msgs[i] = Message{ID: newID("msg_"), Org: org, To: to, Text: r.Text, WAID: newWAID(), Broadcast: b.ID, QueuedAt: now, Media: r.Media}
	}
	want := b
	b, created, err := o.store.InsertBroadcast(ctx, b, msgs)
	if err = o.wrote(org, err); err != nil {
		return b, false, err
	}
	if !created {
		// The hash, not the count: the same number of other recipients
		// is another job, and returning the first would drop them.
		if b.Text != want.Text || b.RecipientsHash != want.RecipientsHash || b.Media != want.Media {
			return Broadcast{}, false, &ConflictError{Msg: fmt.Sprintf("idempotency_key %q was used for broadcast %s with another text, media or other recipients", r.IdempotencyKey, b.ID)}
		}
		return b, false, nil
	}
	o.mu.Lock()
	o.jobs[b.ID] = &JobView{ID: b.ID, Org: org, Seq: b.Seq, Status: JobQueued, ProgressAt: now}
	o.mu.Unlock()
	o.queued(org, len(msgs))
	o.log.Info("broadcast accepted", "org", org, "broadcast", b.ID, "recipients", len(msgs))
	o.kickJobs()
	return b, true, nil
}

// Broadcast returns one of org's jobs with its counts.
func (o *Outbox) Broadcast(ctx context.Context, org, id string) (Broadcast, error) {
	b, err := o.store.Broadcast(ctx, org, id)
	return o.withStatus(b), err
}

// Broadcasts lists org's jobs, newest first.
func (o *Outbox) Broadcasts(ctx context.Context, org string, limit int) ([]Broadcast, error) {
	list, err := o.store.Broadcasts(ctx, org, limit)
	for i := range list {
		list[i] = o.withStatus(list[i])
	}
	return list, err
}

// withStatus shows the scheduler's view, which may be ahead of the store's.
func (o *Outbox) withStatus(b Broadcast) Broadcast {
	o.mu.Lock()
	defer o.mu.Unlock()
	if j, ok := o.jobs[b.ID]; ok {
		b.Status = j.Status
	}
	return b
}

// CancelBroadcast cancels a job: its unsent messages fail with reason
// cancelled. A job already done or cancelled is returned as it is.
func (o *Outbox) CancelBroadcast(ctx context.Context, org, id string) (Broadcast, error) {
	b, failed, err := o.store.CancelBroadcast(ctx, org, id, o.clock.Now())
	if len(failed) > 0 || err == nil {
		// Committed: the job is final, even if reading it back failed.
		o.mu.Lock()
		delete(o.jobs, id)
		o.mu.Unlock()
	}
	if err != nil {
		return b, err
	}
	if len(failed) > 0 {
		o.failedMessages(failed, "cancelled")
		o.log.Info("broadcast cancelled", "org", org, "broadcast", id, "unsent", len(failed))
	}
	o.kickJobs()
	return b, nil
}

// activeJobs are org's broadcasts whose messages may be sent now.
func (o *Outbox) activeJobs(org string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []JobView
	for _, j := range o.jobs {
		if j.Org == org && j.Status == JobSending {
			ids = append(ids, *j)
		}
	}
	slices.SortFunc(ids, func(a, b JobView) int { return cmp.Compare(a.Seq, b.Seq) })
	out := make([]string, len(ids))
	for i, j := range ids {
		out[i] = j.ID
	}
	return out
}

// FleetFunc adapts a function to Fleet.
type FleetFunc func(org string) (Worker, bool)

// Sender calls f.
func (f FleetFunc) Sender(org string) (Worker, bool) { return f(org) }
