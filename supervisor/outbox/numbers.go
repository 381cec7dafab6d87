package outbox

import (
	"fmt"
	"strings"

	"github.com/wa-sidecar/wa-sidecar/shared/phone"
)

// region is the default_country org's numbers are read with: its own
// from [[org]], else the host-wide one (organizations registered through
// the API have no [[org]] entry).
func (o *Outbox) region(org string) string {
	if r, ok := o.countries[org]; ok {
		return r
	}
	return o.cfg.DefaultCountry
}

// number parses a message's recipient into the E.164 digits that are
// stored, compared for idempotency and sent.
func (o *Outbox) number(org, to string) (string, error) {
	d, err := phone.Parse(to, o.region(org))
	if err != nil {
		return "", &InputError{Field: "to", Msg: err.Error()}
	}
	return d, nil
}

// ParseNumber reads a number as the organization's callers write it (its
// default_country applies) into E.164 digits, or says why it is not one:
// the contacts check reads numbers by the same rule as sends.
func (o *Outbox) ParseNumber(org, input string) (string, error) {
	return phone.Parse(input, o.region(org))
}

// maxNamed bounds how many refused recipients one error lists.
const maxNamed = 20

// recipients parses a broadcast's numbers and removes duplicates after
// parsing, so that two spellings of one number are one recipient (and one
// recipients hash). Every refused number is named with why, up to maxNamed.
func (o *Outbox) recipients(org string, in []string) ([]string, error) {
	region := o.region(org)
	var bad []string
	refused := 0
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, p := range in {
		d, err := phone.Parse(p, region)
		if err != nil {
			if refused++; refused <= maxNamed {
				bad = append(bad, err.Error())
			}
			continue
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if refused > 0 {
		msg := strings.Join(bad, "; ")
		if refused > maxNamed {
			msg += fmt.Sprintf("; and %d more", refused-maxNamed)
		}
		return nil, &InputError{Field: "recipients", Msg: msg}
	}
	return out, nil
}
