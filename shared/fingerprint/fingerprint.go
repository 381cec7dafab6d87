// Package fingerprint chooses, encodes and checks the device fingerprint a
// worker's linked device shows WhatsApp: a browser, an OS and the OS version.
//
// WhatsApp reads identical fingerprints from one IP as automation and answers
// with LOGOUT, so the organizations of a host need distinct ones; and a
// fingerprint that changes for a linked device changes its login payload, so
// an organization keeps its fingerprint for life. The supervisor therefore
// picks one from the catalog once, stores its encoding and passes it to the
// worker on every start. The package stays free of whatsmeow so that the
// supervisor can import it without the worker's dependencies.
package fingerprint

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The names WhatsApp shows on the phone's list of linked devices. The
// browsers are those whatsmeow can announce both in its device properties
// and when pairing by phone code (waCompanionReg.DeviceProps_PlatformType,
// whatsmeow.PairClientType); Internet Explorer would stand out today.
const (
	Chrome  = "Chrome"
	Edge    = "Edge"
	Firefox = "Firefox"
	Opera   = "Opera"
	Safari  = "Safari"

	Windows = "Windows"
	MacOS   = "Mac OS"
	Linux   = "Linux"
)

// Fingerprint is what a linked device tells WhatsApp about itself. It is
// comparable, so it can key a map.
type Fingerprint struct {
	Browser string
	OS      string    // shown on the phone's linked devices list
	Version [3]uint32 // of the OS
}

// String is the canonical encoding, such as "Chrome/Windows/10.0.19045",
// that the supervisor stores and the worker receives; Parse reads it back.
func (f Fingerprint) String() string {
	return fmt.Sprintf("%s/%s/%d.%d.%d", f.Browser, f.OS, f.Version[0], f.Version[1], f.Version[2])
}

// DisplayName is the "Browser (OS)" form WhatsApp expects when pairing by
// phone code; it matches the QR registration's device properties.
func (f Fingerprint) DisplayName() string {
	return fmt.Sprintf("%s (%s)", f.Browser, f.OS)
}

// example shows the encoding in Parse's errors.
const example = "Chrome/Windows/10.0.19045"

// Parse reads String's encoding and nothing else, so that a stored value
// that parses is exactly the fingerprint the device was linked with. It
// rejects browsers and OSes outside the catalog's families and pairs no one
// runs, such as Safari on Windows.
func Parse(s string) (Fingerprint, error) {
	invalid := func(reason string) (Fingerprint, error) {
		return Fingerprint{}, fmt.Errorf("fingerprint %.80q is invalid: %s", s, reason)
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return invalid("want Browser/OS/major.minor.patch, such as " + example)
	}
	browser, os := parts[0], parts[1]
	if !slices.Contains(browsers(), browser) {
		return invalid(fmt.Sprintf("unknown browser %.20q; known: %s", browser, strings.Join(browsers(), ", ")))
	}
	fam := familyOf(os)
	if fam == nil {
		return invalid(fmt.Sprintf("unknown OS %.20q; known: %s", os, strings.Join(oses(), ", ")))
	}
	if !slices.Contains(fam.browsers, browser) {
		return invalid(fmt.Sprintf("%s does not go with %s, which takes %s", browser, os, strings.Join(fam.browsers, ", ")))
	}
	version, err := parseVersion(parts[2])
	if err != nil {
		return invalid(err.Error())
	}
	return Fingerprint{Browser: browser, OS: os, Version: version}, nil
}

// parseVersion accepts only what String writes: three decimal numbers
// without sign or leading zeros, each below 2^32.
func parseVersion(s string) ([3]uint32, error) {
	var v [3]uint32
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %.20q is not major.minor.patch", s)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != p {
			return v, fmt.Errorf("version %.20q: %.20q is not a decimal number below 2^32 without sign or leading zeros", s, p)
		}
		v[i] = uint32(n)
	}
	return v, nil
}

// familyOf is the catalog family of an OS name, or nil.
func familyOf(os string) *family {
	for i := range families {
		if families[i].os == os {
			return &families[i]
		}
	}
	return nil
}

// browsers lists every browser of some family, in the families' order.
func browsers() []string {
	var all []string
	for _, fam := range families {
		for _, b := range fam.browsers {
			if !slices.Contains(all, b) {
				all = append(all, b)
			}
		}
	}
	return all
}

// oses lists the families' OS names.
func oses() []string {
	names := make([]string, len(families))
	for i, fam := range families {
		names[i] = fam.os
	}
	return names
}
