package config

// The checks Validate runs on single values: each returns an error that
// names what is wrong with the value, and Validate prefixes the key.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
}

func listenAddr(s string) error {
	if p, ok := IsUnixListen(s); ok {
		if p == "" {
			return errors.New("unix: needs a socket path")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is not host:port or unix:/path", s)
	}
	return nil
}

func atLeast(v, min int) error {
	if v < min {
		return fmt.Errorf("%d is below the minimum %d", v, min)
	}
	return nil
}

func between(v, min, max int) error {
	if v < min || v > max {
		return fmt.Errorf("%d is not between %d and %d", v, min, max)
	}
	return nil
}

// typingRange is a durationRange capped at a minute: the worker shows
// "typing…" no longer than that.
func typingRange(r [2]Duration) error {
	if err := durationRange(r); err != nil {
		return err
	}
	if r[1].Duration > time.Minute {
		return fmt.Errorf("%s is longer than a minute", r[1].Duration)
	}
	return nil
}

func positive(d Duration) error {
	if d.Duration <= 0 {
		return fmt.Errorf("%s must be greater than zero", d.Duration)
	}
	return nil
}

// MinRetention is the shortest messages.retention: a message's outcome
// stays readable for a client that polls it, and pruning (every tenth of
// the retention) never runs more often than every 6 s.
const MinRetention = time.Minute

func atLeastDuration(d Duration, min time.Duration) error {
	if d.Duration < min {
		return fmt.Errorf("%s is below the minimum %s", d.Duration, min)
	}
	return nil
}

func nonNegative(d Duration) error {
	if d.Duration < 0 {
		return fmt.Errorf("%s must not be negative", d.Duration)
	}
	return nil
}

func durationRange(r [2]Duration) error {
	if r[0].Duration < 0 || r[1].Duration < r[0].Duration {
		return fmt.Errorf("[%s, %s] must be [min, max] with 0 <= min <= max", r[0].Duration, r[1].Duration)
	}
	return nil
}

// origins checks browser origins: scheme and host (and port), nothing else,
// as browsers send them in the Origin header.
func origins(list []string) error {
	for _, o := range list {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin such as \"https://app.example\" (scheme and host only)", o)
		}
	}
	return nil
}

// hostNames accepts DNS names as a Host header carries them, without the
// port: the API's own port is the only one it answers on.
func hostNames(list []string) error {
	for _, h := range list {
		if len(h) > 253 || !hostName.MatchString(h) {
			return fmt.Errorf("%q is not a host name such as \"wa-sidecar-api.wa-sidecar.svc\" (no scheme, no port)", h)
		}
	}
	return nil
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// memoryLimit accepts GOMEMLIMIT's own syntax, a number of bytes with an
// optional B, KiB, MiB or GiB, from 8MiB: below that the worker's own
// runtime overhead alone passes it, and the GC would run without end.
func memoryLimit(s string) error {
	if s == "" {
		return nil
	}
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB)?$`).FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("%q is not a size like \"12MiB\"", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	if err != nil || n > (1<<50)/unit {
		return fmt.Errorf("%q is too large", s)
	}
	if n*unit < 8<<20 {
		return fmt.Errorf("%q: use at least 8MiB (a worker's runtime alone takes about 7 MiB)", s)
	}
	return nil
}

// secretWith requires a secret file once a webhook URL is set: unsigned
// webhooks would let anyone who can reach Django forge events.
func secretWith(url, file string) error {
	if url != "" && file == "" {
		return errors.New("is required when webhook.url is set (the key that signs each webhook)")
	}
	return nil
}

func optionalURL(s string) error {
	if s == "" {
		return nil
	}
	return requiredURL(s)
}

func requiredURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}
