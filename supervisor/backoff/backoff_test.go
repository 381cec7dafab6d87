package backoff

import (
	"math"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	min, max := time.Second, 5*time.Minute
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{-3, time.Second},
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{9, 256 * time.Second},
		{10, 5 * time.Minute}, // 512s capped
		{62, 5 * time.Minute},
		{63, 5 * time.Minute},
		{64, 5 * time.Minute},
		{1000, 5 * time.Minute},
		{math.MaxInt, 5 * time.Minute},
	}
	for _, c := range cases {
		if got := Delay(min, max, c.attempt); got != c.want {
			t.Errorf("Delay(%v, %v, %d) = %v, want %v", min, max, c.attempt, got, c.want)
		}
	}
}

func TestDelayNeverDecreasesOrExceedsMax(t *testing.T) {
	min, max := 3*time.Millisecond, time.Duration(math.MaxInt64)
	prev := time.Duration(0)
	for a := 1; a <= 200; a++ {
		d := Delay(min, max, a)
		if d < prev || d > max || d <= 0 {
			t.Fatalf("attempt %d: %v after %v", a, d, prev)
		}
		prev = d
	}
}

func TestDelayDegenerateRange(t *testing.T) {
	if got := Delay(time.Minute, time.Second, 1); got != time.Second {
		t.Errorf("min > max: got %v, want max", got)
	}
	if got := Delay(time.Second, time.Second, 50); got != time.Second {
		t.Errorf("min == max: got %v", got)
	}
	if got := Delay(0, time.Second, 50); got != 0 {
		t.Errorf("zero min: got %v, want 0", got)
	}
}
