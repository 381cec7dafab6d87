package config

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/wa-sidecar/wa-sidecar/shared/media"
)

// Media bounds the files messages carry.
type Media struct {
	// MaxBytes is the largest file, after base64 decoding ("16MiB").
	MaxBytes Size `toml:"max_bytes"`
}

// Size is a byte count written as "16MiB", "512KiB", "1GiB" or plain bytes.
type Size struct{ Bytes int64 }

var sizePattern = regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB)?$`)

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(b []byte) error {
	m := sizePattern.FindStringSubmatch(string(b))
	if m == nil {
		return fmt.Errorf("%q is not a size like \"16MiB\"", string(b))
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	if err != nil || n > (1<<50)/unit {
		return fmt.Errorf("%q is too large", string(b))
	}
	s.Bytes = n * unit
	return nil
}

// MarshalText writes the size back in bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(s.Bytes, 10)), nil }

// mediaMaxBytes keeps a file within what WhatsApp and the worker contract take.
func mediaMaxBytes(s Size) error {
	if s.Bytes < 1 || s.Bytes > media.MaxBytes {
		return fmt.Errorf("%d bytes is outside 1 byte to %dMiB (WhatsApp's largest document)", s.Bytes, media.MaxBytes>>20)
	}
	return nil
}
