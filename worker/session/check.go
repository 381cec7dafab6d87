package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
)

// checkBatch bounds one usync query: WhatsApp's own clients look contacts
// up in small pages, and a huge query is what a scraper sends.
const checkBatch = 50

// CheckNumbers asks WhatsApp which phones have an account (whatsmeow
// IsOnWhatsApp, a usync contact query), checkBatch phones per query. A phone
// the server did not answer for makes the whole call an error: no answer
// must never read as "not on WhatsApp".
func (s *Session) CheckNumbers(ctx context.Context, phones []string) ([]*pb.NumberCheck, error) {
	for _, p := range phones {
		if err := e164.Validate(p); err != nil {
			return nil, fmt.Errorf("check numbers: %w", err)
		}
	}
	cli := s.client()
	if cli == nil || !cli.IsLoggedIn() {
		return nil, errors.New("check numbers: not connected to WhatsApp")
	}
	out := make([]*pb.NumberCheck, 0, len(phones))
	for start := 0; start < len(phones); start += checkBatch {
		batch := phones[start:min(start+checkBatch, len(phones))]
		query := make([]string, len(batch))
		for i, p := range batch {
			query[i] = "+" + p
		}
		answers, err := cli.IsOnWhatsApp(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("check %d numbers: %w", len(batch), err)
		}
		byPhone := make(map[string]*pb.NumberCheck, len(answers))
		for _, a := range answers {
			phone := strings.TrimPrefix(a.Query, "+")
			check := &pb.NumberCheck{Phone: phone, OnWhatsapp: a.IsIn}
			if a.IsIn {
				check.Jid = a.JID.String()
			}
			byPhone[phone] = check
		}
		for _, p := range batch {
			check, ok := byPhone[p]
			if !ok {
				return nil, fmt.Errorf("check numbers: the server did not answer for %s", p)
			}
			out = append(out, check)
		}
	}
	return out, nil
}
