package statusapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// Webhooks is the dead-letter side of webhook delivery; the webhook
// dispatcher implements it.
type Webhooks interface {
	Dead(ctx context.Context, limit int) ([]webhook.Event, error)
	Retry(ctx context.Context, id string) (webhook.Event, error)
}

// DeadLetterBody is a webhook event given up after webhook.give_up_after.
type DeadLetterBody struct {
	ID             string          `json:"id"`
	Event          string          `json:"event"`
	OrganizationID string          `json:"organization_id"`
	Status         string          `json:"status"`
	Reason         string          `json:"reason"`
	Timestamp      time.Time       `json:"timestamp"`
	Data           json.RawMessage `json:"data"`
	Attempts       int             `json:"attempts"`
	LastError      string          `json:"last_error"`
	DeadAt         *time.Time      `json:"dead_at"`
}

// DeadLetterList is the dead letters, newest first.
type DeadLetterList struct {
	DeadLetters []DeadLetterBody `json:"dead_letters"`
}

func deadLetterBody(e webhook.Event) DeadLetterBody {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return DeadLetterBody{ID: e.ID, Event: e.Kind, OrganizationID: e.Org, Status: e.Status, Reason: e.Reason,
		Timestamp: e.At.UTC(), Data: data, Attempts: e.Attempts, LastError: e.LastError, DeadAt: stamp(e.DeadAt)}
}

func (s *server) webhooksOff() error {
	return errNotFound("webhooks are off: webhook.url is not set in the config")
}

func (s *server) listDead(r *http.Request) (int, any, error) {
	if s.webhooks == nil {
		return 0, nil, s.webhooksOff()
	}
	limit, err := limitOf(r.URL.Query().Get("limit"))
	if err != nil {
		return 0, nil, err
	}
	dead, err := s.webhooks.Dead(r.Context(), limit)
	if err != nil {
		return 0, nil, err
	}
	out := DeadLetterList{DeadLetters: []DeadLetterBody{}}
	for _, e := range dead {
		out.DeadLetters = append(out.DeadLetters, deadLetterBody(e))
	}
	return http.StatusOK, out, nil
}

// retryDead puts one dead letter back at the head of its organization's
// events; the answer is the event as it now waits.
func (s *server) retryDead(r *http.Request) (int, any, error) {
	if s.webhooks == nil {
		return 0, nil, s.webhooksOff()
	}
	if err := decode(r, &struct{}{}, false); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("event")
	e, err := s.webhooks.Retry(r.Context(), id)
	if errors.Is(err, webhook.ErrNotFound) {
		return 0, nil, errNotFound("no dead webhook event %q", id)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, deadLetterBody(e), nil
}
