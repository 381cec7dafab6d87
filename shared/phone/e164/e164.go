// Package e164 checks a number already in the form WhatsApp addresses it:
// the international number in digits, country code first, without '+',
// spaces or dashes (E.164 allows 15 digits; no country code starts with 0).
// The supervisor parses what callers write with shared/phone, whose every
// answer passes this check; the worker checks again with this package
// alone, so that it does not link the phone-number library and its
// metadata.
package e164

import (
	"fmt"
	"strconv"
)

// Validate returns an error naming what is wrong with number.
func Validate(number string) error {
	switch {
	case number == "":
		return fmt.Errorf("phone number is empty")
	case len(number) < 7 || len(number) > 15:
		return fmt.Errorf("phone number %s must have 7 to 15 digits, country code first", quote(number))
	case number[0] == '0':
		return fmt.Errorf("phone number %s starts with 0; write it with its country code, without the trunk prefix", quote(number))
	}
	for _, c := range number {
		if c < '0' || c > '9' {
			return fmt.Errorf("phone number %s must be digits only, without '+', spaces or dashes", quote(number))
		}
	}
	return nil
}

// quote keeps an error one short line whatever the caller sent: the quoted
// form is what is cut.
func quote(s string) string {
	q := strconv.Quote(s)
	if len(q) > 48 {
		return q[:48] + "..."
	}
	return q
}
