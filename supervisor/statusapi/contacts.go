package statusapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// Contacts answers whether numbers are on WhatsApp; *outbox.Outbox
// implements it.
type Contacts interface {
	// ParseNumber reads input with org's default_country into E.164 digits.
	ParseNumber(org, input string) (string, error)
	CheckNumbers(ctx context.Context, org string, phones []string) ([]outbox.NumberCheck, error)
}

// maxCheckNumbers bounds one POST /v1/orgs/{id}/contacts/check.
const maxCheckNumbers = 500

// CheckRequest is the body of POST /v1/orgs/{id}/contacts/check.
type CheckRequest struct {
	Numbers []string `json:"numbers"`
}

// CheckResult is one number's answer, in the order the numbers were sent.
type CheckResult struct {
	Number     string    `json:"number"` // E.164 digits
	Input      string    `json:"input"`  // as the caller wrote it
	OnWhatsApp bool      `json:"on_whatsapp"`
	JID        string    `json:"jid"`
	CheckedAt  time.Time `json:"checked_at"`
}

// CheckResponse is the answer of POST /v1/orgs/{id}/contacts/check.
type CheckResponse struct {
	Results []CheckResult `json:"results"`
}

// checkNumbers answers from fresh cached answers and asks WhatsApp, through
// the organization's worker, about the rest.
func (s *server) checkNumbers(r *http.Request, id string) (int, any, error) {
	var req CheckRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	switch {
	case len(req.Numbers) == 0:
		return 0, nil, &outbox.InputError{Field: "numbers", Msg: "is empty; send 1 to 500 phone numbers"}
	case len(req.Numbers) > maxCheckNumbers:
		return 0, nil, &outbox.InputError{Field: "numbers", Msg: fmt.Sprintf("has %d numbers; one check takes %d at most", len(req.Numbers), maxCheckNumbers)}
	}
	numbers := make([]string, len(req.Numbers))
	var bad, distinct []string
	seen := make(map[string]bool, len(req.Numbers))
	for i, in := range req.Numbers {
		n, err := s.contacts.ParseNumber(id, in)
		if err != nil {
			bad = append(bad, fmt.Sprintf("[%d] %v", i, err))
			continue
		}
		numbers[i] = n
		if !seen[n] {
			seen[n] = true
			distinct = append(distinct, n)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
		}
		return 0, nil, &outbox.InputError{Field: "numbers", Msg: strings.Join(bad, "; ")}
	}
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	checks, err := s.contacts.CheckNumbers(r.Context(), id, distinct)
	if err != nil {
		return 0, nil, err
	}
	byNumber := make(map[string]outbox.NumberCheck, len(checks))
	for _, c := range checks {
		byNumber[c.Phone] = c
	}
	out := CheckResponse{Results: make([]CheckResult, len(numbers))}
	for i, n := range numbers {
		c := byNumber[n]
		out.Results[i] = CheckResult{Number: n, Input: req.Numbers[i], OnWhatsApp: c.OnWhatsApp, JID: c.JID, CheckedAt: c.CheckedAt.UTC()}
	}
	return http.StatusOK, out, nil
}
