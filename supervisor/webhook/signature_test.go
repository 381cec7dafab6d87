package webhook

import (
	"errors"
	"testing"
	"time"
)

func TestSignatureVerifies(t *testing.T) {
	secret, body := []byte("0123456789abcdef0123"), []byte(`{"id":"evt_1","event":"session_cleared"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, body, now)
	if err := Verify(secret, body, h, now.Add(time.Minute), Tolerance); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	tampered := append([]byte(nil), body...)
	tampered[10] ^= 1
	if err := Verify(secret, tampered, h, now, Tolerance); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("one byte of the body changed: %v", err)
	}
	if err := Verify([]byte("another secret 0123"), body, h, now, Tolerance); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another secret: %v", err)
	}
	if err := Verify(secret, body, h, now.Add(6*time.Minute), Tolerance); err == nil {
		t.Fatal("a replay six minutes later was accepted")
	}
	if err := Verify(secret, body, "v1="+h[len("t=1800000000,v1="):], now, Tolerance); err == nil {
		t.Fatal("a signature without its timestamp was accepted")
	}
	// A receiver may get several v1 values while a secret is rotated.
	if err := Verify(secret, body, h+",v1=00ff", now, Tolerance); err != nil {
		t.Fatalf("with a second v1: %v", err)
	}
}

func TestAfterFailure(t *testing.T) {
	created := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		attempts int
		since    time.Duration
		frac     float64
		wait     time.Duration
		dead     bool
	}{
		{1, time.Second, 0, 500 * time.Millisecond, false},
		{1, time.Second, 0.999, time.Second, false},
		{4, time.Minute, 0, 4 * time.Second, false},
		{30, time.Hour, 0.999, 10 * time.Minute, false},
		{30, 24 * time.Hour, 0, 0, true},
	} {
		now := created.Add(c.since)
		next, dead := afterFailure(created, now, c.attempts, 24*time.Hour, c.frac)
		if dead != c.dead || (!dead && (next.Sub(now) > c.wait || next.Sub(now) < c.wait-c.wait/500)) {
			t.Errorf("attempt %d after %s: next in %s dead %v, want %s %v", c.attempts, c.since, next.Sub(now), dead, c.wait, c.dead)
		}
	}
}
