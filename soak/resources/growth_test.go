package resources

import (
	"strings"
	"testing"
	"time"
)

// series is one lifetime of 60 quiet samples, 2 s apart, whose RSS,
// goroutines and FDs at sample i are given by f.
func series(lifetime int, f func(i int) (rss int64, g, fds float64)) []Sample {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	out := make([]Sample, 60)
	for i := range out {
		rss, g, fds := f(i)
		out[i] = Sample{At: start.Add(time.Duration(i) * 2 * time.Second), Lifetime: lifetime, RSS: rss, Goroutines: g, FDs: fds, Quiet: true}
	}
	return out
}

func TestJudge(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name    string
		samples []Sample
		grew    string // the metric named in the finding; "" for none
	}{
		{"flat after warm-up", series(1, func(i int) (int64, float64, float64) {
			if i < 20 {
				return int64(20+i/2) * mib, float64(80 + i), 30
			}
			return 30 * mib, 100, 40
		}), ""},
		{"noise within the floors", series(1, func(i int) (int64, float64, float64) {
			return 30*mib + int64(i%3)*mib, float64(100 + i%7), float64(40 + i%4)
		}), ""},
		{"rss climbs", series(1, func(i int) (int64, float64, float64) {
			return 30*mib + int64(i)*mib/4, 100, 40
		}), "rss"},
		{"a goroutine per sample", series(1, func(i int) (int64, float64, float64) {
			return 30 * mib, float64(100 + i), 40
		}), "goroutines"},
		{"leaking files", series(1, func(i int) (int64, float64, float64) {
			return 30 * mib, 100, float64(40 + i/2)
		}), "fds"},
		{"a short leaky lifetime is not the judged one", append(
			series(1, func(i int) (int64, float64, float64) { return 30*mib + int64(i)*mib, 100, 40 })[:20],
			series(2, func(i int) (int64, float64, float64) { return 30 * mib, 100, 40 })...), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.samples)
			if len(v.Lines) != 3 {
				t.Fatalf("lines %q", v.Lines)
			}
			switch {
			case c.grew == "" && len(v.Findings) > 0:
				t.Fatalf("findings %q", v.Findings)
			case c.grew != "" && (len(v.Findings) != 1 || !strings.Contains(v.Findings[0], c.grew+":")):
				t.Fatalf("want one finding on %s, got %q", c.grew, v.Findings)
			}
		})
	}
}

// Too few samples at rest is a finding: a run that could not judge must
// not pass as one that did.
func TestJudgeNeedsSamplesAtRest(t *testing.T) {
	s := series(1, func(int) (int64, float64, float64) { return 1 << 20, 1, 1 })
	for i := range s {
		s[i].Quiet = i < 25
	}
	if v := Judge(s); len(v.Findings) != 1 || !strings.Contains(v.Findings[0], "not judged") {
		t.Fatalf("findings %q", v.Findings)
	}
	if v := Judge(s[:10]); v.Lifetime != 0 || len(v.Lines) != 1 {
		t.Fatalf("ten samples judged: %+v", v)
	}
}

// Pauses wait for busy organizations, so the end of a lifetime may have
// none: the samples at rest it has are still judged (a fresh clone's
// 3-minute soak once had none in the last third of its only lifetime).
func TestJudgeRestOnlyInTheMiddle(t *testing.T) {
	for _, leak := range []bool{false, true} {
		s := series(1, func(i int) (int64, float64, float64) {
			if leak {
				return 30 << 20, float64(100 + 2*i), 40
			}
			return 30 << 20, 100, 40
		})
		for i := range s {
			s[i].Quiet = i >= 20 && i < 40
		}
		v := Judge(s)
		if v.Lifetime != 1 || len(v.Lines) != 3 || (len(v.Findings) > 0) != leak {
			t.Fatalf("leak %v: %+v", leak, v)
		}
	}
}
