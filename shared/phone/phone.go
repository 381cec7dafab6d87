// Package phone reads phone numbers as people write them ("+57 300 123
// 4567", "(300) 123-4567", "573001234567") with the phone-number library
// github.com/nyaruka/phonenumbers, and turns them into the E.164 digits
// WhatsApp addresses (country code first, no '+'). It is the one place the
// supervisor parses a number: message recipients, broadcast recipients and
// checked numbers all go through Parse, so that two spellings of a number
// are one number everywhere.
//
// The worker does not import this package (the library's metadata is
// loaded at init and embedded in the binary); it checks the digits it gets
// with shared/phone/e164, which every answer of Parse passes.
package phone

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"

	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
)

// maxInput bounds what is quoted back and handed to the library's regular
// expressions; a number with all its spaces and dashes fits many times.
const maxInput = 64

// Parse returns the E.164 digits of input, or an error of one sentence
// naming input and what is wrong with it. region is the ISO 3166 region
// (default_country, e.g. "CO") whose numbers may be written without their
// country code, or "" for none.
//
// A number written with '+' is international whatever region says. A
// number written without '+' is read:
//   - without a region, as the international number, country code first
//     (what the API has always taken);
//   - with a region, as a number of that region first ("(300) 123-4567",
//     "300 123 4567"; the library also takes the region's own country code
//     at the front, so "573001234567" with CO is 573001234567), and only
//     when that is no valid number there, as an international number
//     ("4915123456789" with CO is a German mobile). The national reading
//     wins when both are valid: a sender with a default country writes
//     mostly numbers of its own country, and about one national number in
//     seven is also valid when its first digits are taken as a country
//     code, while a foreign number is always unambiguous with its '+'.
func Parse(input, region string) (string, error) {
	s := strings.TrimSpace(input)
	switch {
	case s == "":
		return "", errors.New("phone number is empty")
	case len(s) > maxInput:
		return "", fmt.Errorf("phone number %s is too long: %d characters, where a phone number has at most %d even with spaces and dashes", quote(input), len(s), maxInput)
	case strings.ContainsFunc(s, unicode.IsLetter):
		// The library reads letters as on a keypad ("1-800-FLOWERS"); in
		// a recipient they are a typo, and a guessed number is someone
		// else's phone.
		return "", fmt.Errorf("phone number %s has letters: write it in digits (spaces, dashes, dots and parentheses may stay)", quote(input))
	}
	plus := strings.HasPrefix(s, "+") || strings.HasPrefix(s, "\uFF0B")
	if plus || region == "" {
		text := s
		if !plus {
			text = "+" + s
		}
		digits, why := read(text, "")
		switch {
		case why == "":
			return digits, nil
		case plus:
			return "", fmt.Errorf("phone number %s %s", quote(input), why)
		default:
			return "", fmt.Errorf("phone number %s %s; with no default_country set, a number is read country code first", quote(input), why)
		}
	}
	digits, why := read(s, region)
	if why == "" {
		return digits, nil
	}
	if intl, other := read("+"+s, ""); other == "" {
		return intl, nil
	}
	return "", fmt.Errorf("phone number %s %s; read country code first, it is not valid either", quote(input), why)
}

// read parses text with the library and returns its digits, or why it is
// not a number WhatsApp can address, as the end of a sentence.
func read(text, region string) (digits, why string) {
	n, err := phonenumbers.Parse(text, region)
	switch {
	case errors.Is(err, phonenumbers.ErrInvalidCountryCode):
		return "", "has no valid country code"
	case errors.Is(err, phonenumbers.ErrNotANumber):
		return "", "is not a phone number"
	case errors.Is(err, phonenumbers.ErrTooShortNSN), errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return "", "is too short"
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return "", "is too long"
	case err != nil:
		return "", "cannot be read as a phone number (" + err.Error() + ")"
	case n.GetExtension() != "":
		return "", "has an extension, which WhatsApp cannot dial"
	}
	where := countryName(n.GetCountryCode())
	if !phonenumbers.IsValidNumber(n) {
		switch phonenumbers.IsPossibleNumberWithReason(n) {
		case phonenumbers.INVALID_COUNTRY_CODE:
			return "", "has no valid country code"
		case phonenumbers.TOO_SHORT:
			return "", "is too short for " + where
		case phonenumbers.TOO_LONG:
			return "", "is too long for " + where
		case phonenumbers.INVALID_LENGTH:
			return "", "has a length no number of " + where + " has"
		case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
			return "", "is a local number of " + where + ": write it with its area code"
		default:
			return "", "is not a valid number for " + where
		}
	}
	digits = strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+")
	// The worker refuses anything e164 does; a number the library's
	// metadata calls valid but WhatsApp cannot address is refused here,
	// with a sentence, rather than failing at send time.
	if err := e164.Validate(digits); err != nil {
		return "", "is not a number WhatsApp can address (" + err.Error() + ")"
	}
	return digits, ""
}

// countryName says "+57 (CO)", or "+800" for a calling code of no region.
func countryName(code int32) string {
	r := phonenumbers.GetRegionCodeForCountryCode(int(code))
	if r == "" || r == phonenumbers.UNKNOWN_REGION || r == "001" {
		return "+" + strconv.Itoa(int(code))
	}
	return fmt.Sprintf("+%d (%s)", code, r)
}

// CheckRegion accepts "" and the ISO 3166 regions the library has
// numbering metadata for.
func CheckRegion(region string) error {
	switch {
	case region == "" || phonenumbers.GetSupportedRegions()[region]:
		return nil
	case phonenumbers.GetSupportedRegions()[strings.ToUpper(region)]:
		return fmt.Errorf("%s: write the region in capitals, %q", quote(region), strings.ToUpper(region))
	default:
		return fmt.Errorf("%s is not an ISO 3166 region the phone-number library knows (e.g. \"CO\", \"US\", \"MX\")", quote(region))
	}
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
