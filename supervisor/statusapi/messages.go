package statusapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// Outbox is what the API needs to queue and show messages and broadcasts.
type Outbox interface {
	Send(ctx context.Context, org string, r outbox.SendRequest) (outbox.Message, bool, error)
	Message(ctx context.Context, org, id string) (outbox.Message, error)
	Messages(ctx context.Context, org string, f outbox.Filter) ([]outbox.Message, error)
	CreateBroadcast(ctx context.Context, org string, r outbox.BroadcastRequest) (outbox.Broadcast, bool, error)
	Broadcast(ctx context.Context, org, id string) (outbox.Broadcast, error)
	Broadcasts(ctx context.Context, org string, limit int) ([]outbox.Broadcast, error)
	CancelBroadcast(ctx context.Context, org, id string) (outbox.Broadcast, error)
	// Ready is nil while message writes go through, an error wrapping
	// outbox.ErrNotSaved after the disk refused one until one succeeds.
	Ready() error
}

// Bodies of the sending routes are larger than the others': a text may
// hold WhatsApp's 65,536 characters, a broadcast 100,000 numbers.
const (
	maxMessageBody   = 512 << 10
	maxBroadcastBody = 4 << 20
)

// MessageRequest is the body of POST /v1/orgs/{id}/messages.
type MessageRequest struct {
	To             string `json:"to"`
	Text           string `json:"text"`
	IdempotencyKey string `json:"idempotency_key"`
	// Media names an uploaded file; Text is then its optional caption.
	Media string `json:"media"`
}

// MessageBody is a message as the API shows it; a time is null until the
// message gets there.
type MessageBody struct {
	ID             string     `json:"id"`
	To             string     `json:"to"`
	Text           string     `json:"text,omitempty"`
	Status         string     `json:"status"`
	Reason         string     `json:"reason,omitempty"`
	QueuedAt       *time.Time `json:"queued_at"`
	SendingAt      *time.Time `json:"sending_at"`
	SentAt         *time.Time `json:"sent_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
	ReadAt         *time.Time `json:"read_at"`
	FailedAt       *time.Time `json:"failed_at"`
	WAMessageID    string     `json:"wa_message_id"`
	BroadcastID    string     `json:"broadcast_id,omitempty"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	Media          string     `json:"media,omitempty"`
}

// MessageList is a page of messages, newest first; Next continues it.
type MessageList struct {
	Messages []MessageBody `json:"messages"`
	Next     string        `json:"next,omitempty"`
}

func stamp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func messageBody(m outbox.Message) MessageBody {
	return MessageBody{
		ID: m.ID, To: m.To, Text: m.Text, Status: string(m.Status), Reason: m.Reason, WAMessageID: m.WAID,
		QueuedAt: stamp(m.QueuedAt), SendingAt: stamp(m.SendingAt), SentAt: stamp(m.SentAt),
		DeliveredAt: stamp(m.DeliveredAt), ReadAt: stamp(m.ReadAt), FailedAt: stamp(m.FailedAt),
		BroadcastID: m.Broadcast, IdempotencyKey: m.IdempotencyKey, Media: m.Media,
	}
}

// registered answers 404 for an organization that start never registered.
func (s *server) registered(id string) error {
	_, err := s.fleet.Get(id)
	return err
}

// sendMessage answers 202 with the message: a new one, or the one its
// idempotency key names already. A retry gets the answer the first request
// got, so a caller that checks for 202 needs no special case.
func (s *server) sendMessage(r *http.Request, id string) (int, any, error) {
	var req MessageRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	m, _, err := s.outbox.Send(r.Context(), id, outbox.SendRequest{To: req.To, Text: req.Text, IdempotencyKey: req.IdempotencyKey, Media: req.Media})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, messageBody(m), nil
}

func (s *server) getMessage(r *http.Request, id string) (int, any, error) {
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	m, err := s.outbox.Message(r.Context(), id, r.PathValue("msg"))
	if err != nil {
		return 0, nil, notFound(err, "organization %s has no message %q", id, r.PathValue("msg"))
	}
	return http.StatusOK, messageBody(m), nil
}

var messageStatuses = map[string]bool{"queued": true, "sending": true, "sent": true, "delivered": true, "read": true, "failed": true}

func (s *server) listMessages(r *http.Request, id string) (int, any, error) {
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	f := outbox.Filter{Status: outbox.Status(q.Get("status"))}
	if f.Status != "" && !messageStatuses[string(f.Status)] {
		return 0, nil, badQuery("status must be one of queued, sending, sent, delivered, read, failed")
	}
	limit, err := limitOf(q.Get("limit"))
	if err != nil {
		return 0, nil, err
	}
	f.Limit = limit + 1
	if after := q.Get("after"); after != "" {
		m, err := s.outbox.Message(r.Context(), id, after)
		if err != nil {
			return 0, nil, badQuery("after names no message of this organization")
		}
		f.AfterSeq = m.Seq
	}
	msgs, err := s.outbox.Messages(r.Context(), id, f)
	if err != nil {
		return 0, nil, err
	}
	out := MessageList{Messages: []MessageBody{}}
	for i, m := range msgs {
		if i == limit {
			out.Next = msgs[i-1].ID
			break
		}
		out.Messages = append(out.Messages, messageBody(m))
	}
	return http.StatusOK, out, nil
}

// limitOf reads a page size: 50 when absent, 1 to 500.
func limitOf(s string) (int, error) {
	if s == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 500 {
		return 0, badQuery("limit must be a number from 1 to 500")
	}
	return n, nil
}

func badQuery(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "bad_query", msg: msg}
}

func notFound(err error, format string, a ...any) error {
	if err == outbox.ErrNotFound {
		return errNotFound(format, a...)
	}
	return err
}

// BroadcastRequest is the body of POST /v1/orgs/{id}/broadcasts.
type BroadcastRequest struct {
	Recipients     []string `json:"recipients"`
	Text           string   `json:"text"`
	IdempotencyKey string   `json:"idempotency_key"`
	// Media names an uploaded file; Text is then its optional caption.
	Media string `json:"media"`
}

// BroadcastBody is a broadcast job as the API shows it.
type BroadcastBody struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	Total          int        `json:"total"`
	Pending        int        `json:"pending"`
	Sent           int        `json:"sent"`
	Failed         int        `json:"failed"`
	CreatedAt      *time.Time `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	Media          string     `json:"media,omitempty"`
}

// BroadcastList is an organization's jobs, newest first.
type BroadcastList struct {
	Broadcasts []BroadcastBody `json:"broadcasts"`
}

func broadcastBody(b outbox.Broadcast) BroadcastBody {
	return BroadcastBody{
		ID: b.ID, Status: string(b.Status), Total: b.Total, Pending: b.Counts.Pending, Sent: b.Counts.Sent,
		Failed: b.Counts.Failed, CreatedAt: stamp(b.CreatedAt), StartedAt: stamp(b.StartedAt),
		FinishedAt: stamp(b.FinishedAt), IdempotencyKey: b.IdempotencyKey, Media: b.Media,
	}
}

func (s *server) createBroadcast(r *http.Request, id string) (int, any, error) {
	var req BroadcastRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	b, _, err := s.outbox.CreateBroadcast(r.Context(), id, outbox.BroadcastRequest{
		Recipients: req.Recipients, Text: req.Text, IdempotencyKey: req.IdempotencyKey, Media: req.Media})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, broadcastBody(b), nil
}

func (s *server) getBroadcast(r *http.Request, id string) (int, any, error) {
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	b, err := s.outbox.Broadcast(r.Context(), id, r.PathValue("b"))
	if err != nil {
		return 0, nil, notFound(err, "organization %s has no broadcast %q", id, r.PathValue("b"))
	}
	return http.StatusOK, broadcastBody(b), nil
}

func (s *server) listBroadcasts(r *http.Request, id string) (int, any, error) {
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	limit, err := limitOf(r.URL.Query().Get("limit"))
	if err != nil {
		return 0, nil, err
	}
	list, err := s.outbox.Broadcasts(r.Context(), id, limit)
	if err != nil {
		return 0, nil, err
	}
	out := BroadcastList{Broadcasts: []BroadcastBody{}}
	for _, b := range list {
		out.Broadcasts = append(out.Broadcasts, broadcastBody(b))
	}
	return http.StatusOK, out, nil
}

func (s *server) cancelBroadcast(r *http.Request, id string) (int, any, error) {
	if err := decode(r, &struct{}{}, false); err != nil {
		return 0, nil, err
	}
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	b, err := s.outbox.CancelBroadcast(r.Context(), id, r.PathValue("b"))
	if err != nil {
		return 0, nil, notFound(err, "organization %s has no broadcast %q", id, r.PathValue("b"))
	}
	return http.StatusOK, broadcastBody(b), nil
}
