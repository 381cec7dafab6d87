// Package hooks is the soak's webhook receiver, Django's stand-in: a
// loopback HTTP server that verifies every delivery's signature over the
// raw body, as README tells receivers to, answers 200, and keeps what
// arrived, deduplicated on the event id (delivery is at least once).
package hooks

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// Receiver counts and keeps the webhooks it got.
type Receiver struct {
	// URL is where the supervisor posts; Secret signs the deliveries.
	URL, Secret string

	srv *http.Server

	mu         sync.Mutex
	deliveries int                        // POSTs answered 200, repeats included
	unique     map[string]webhook.Payload // by event id
	bad        []string                   // why a delivery was refused
}

// Start listens on a loopback port the kernel picks.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &Receiver{
		URL:    "http://" + ln.Addr().String() + "/wa/webhook",
		Secret: rand.Text(),
		unique: map[string]webhook.Payload{},
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	// Verified before parsing, over the raw bytes, as a real receiver must.
	if err := webhook.Verify([]byte(r.Secret), body, req.Header.Get(webhook.SignatureHeader), time.Now(), webhook.Tolerance); err != nil {
		r.refuse(fmt.Sprintf("signature: %v", err))
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.ID == "" {
		r.refuse(fmt.Sprintf("body %.200q: %v", body, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.deliveries++
	r.unique[p.ID] = p
	r.mu.Unlock()
}

func (r *Receiver) refuse(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = append(r.bad, why)
}

// Counts are the deliveries answered 200 and the distinct events among them.
func (r *Receiver) Counts() (deliveries, events int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deliveries, len(r.unique)
}

// Refused lists the deliveries that failed verification or parsing: each
// one is a finding.
func (r *Receiver) Refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// MessageStatuses maps each message id to the statuses its message_status
// events reported.
func (r *Receiver) MessageStatuses() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, p := range r.unique {
		if p.Event != "message_status" {
			continue
		}
		var d struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(p.Data, &d) == nil && d.MessageID != "" {
			out[d.MessageID] = append(out[d.MessageID], p.Status)
		}
	}
	return out
}

// Close stops the server.
func (r *Receiver) Close(ctx context.Context) error {
	if err := r.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	return nil
}
