package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// QuietHours is a daily window of local clock readings, as minutes after
// midnight; Start > End crosses midnight ("21:00-08:00").
type QuietHours struct {
	Start, End int
	Set        bool
}

// ParseQuietHours reads "HH:MM-HH:MM"; "" is no window.
func ParseQuietHours(s string) (QuietHours, error) {
	if strings.TrimSpace(s) == "" {
		return QuietHours{}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return QuietHours{}, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	start, err := clockReading(from)
	if err != nil {
		return QuietHours{}, fmt.Errorf("%q: %w", s, err)
	}
	end, err := clockReading(to)
	if err != nil {
		return QuietHours{}, fmt.Errorf("%q: %w", s, err)
	}
	if start == end {
		return QuietHours{}, fmt.Errorf("%q starts and ends at the same time; use \"\" for no quiet hours", s)
	}
	return QuietHours{Start: start, End: end, Set: true}, nil
}

func clockReading(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a 24-hour HH:MM time", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Zones loads every organization's zone; Validate has checked each name.
func (c *Config) Zones() (def *time.Location, orgs map[string]*time.Location, err error) {
	def, err = time.LoadLocation(c.Messages.Timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("messages.timezone: %w", err)
	}
	orgs = map[string]*time.Location{}
	for i, o := range c.Orgs {
		if o.Timezone == "" {
			continue
		}
		if orgs[o.ID], err = time.LoadLocation(o.Timezone); err != nil {
			return nil, nil, fmt.Errorf("org[%d].timezone: %w", i, err)
		}
	}
	return def, orgs, nil
}

func timezone(name string) error {
	if name == "" {
		return errors.New(`must not be empty; "UTC" or an IANA name like "America/Bogota"`)
	}
	if _, err := time.LoadLocation(name); err != nil {
		return fmt.Errorf("%q is not an IANA time zone name like \"America/Bogota\"", name)
	}
	return nil
}

func quietHours(s string) error {
	_, err := ParseQuietHours(s)
	return err
}
