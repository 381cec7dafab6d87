package resources

import (
	"fmt"
	"slices"
	"time"
)

// The growth rule. A supervisor restart resets memory, goroutines and
// files, so only samples of one lifetime are compared. Each live worker
// holds goroutines and files in the supervisor, and the schedule keeps
// some organizations relinking most of the time, so only samples taken in
// the schedule's quiet pauses (every organization connected, no event
// under way, sends going on) count: the level the supervisor returns to at
// rest. The first third of a lifetime is warm-up (workers relinking,
// SQLite's page cache filling) and ignored. The lifetime judged is the one
// with the most samples at rest after its warm-up; the median of the later
// half of those may exceed the median of the earlier half by at most the
// larger of a relative and an absolute tolerance. The absolute floor keeps
// a few goroutines or files of difference on a small base from counting
// as growth. Halves of the samples at rest, not thirds of the time: pauses
// wait for busy organizations, so a stretch of the run may have none.
const (
	relTolerance = 0.10
	minSamples   = 15
	// minCompared is the least number of samples per half the medians
	// are taken over.
	minCompared = 3
)

// absTolerance is the floor per metric, in its unit.
var absTolerance = map[string]float64{"rss": 2 << 20, "goroutines": 10, "fds": 5}

// Lifetime is one supervisor lifetime's samples, summarised.
type Lifetime struct {
	N                  int
	Samples            int
	Start, Middle, End Sample
}

// Duration is the time between the first and the last sample.
func (l Lifetime) Duration() time.Duration { return l.End.At.Sub(l.Start.At) }

// Lifetimes groups samples (in time order) by lifetime.
func Lifetimes(samples []Sample) []Lifetime {
	var out []Lifetime
	for _, group := range byLifetime(samples) {
		out = append(out, Lifetime{N: group[0].Lifetime, Samples: len(group),
			Start: group[0], Middle: group[len(group)/2], End: group[len(group)-1]})
	}
	return out
}

func byLifetime(samples []Sample) [][]Sample {
	var out [][]Sample
	for i, s := range samples {
		if i == 0 || s.Lifetime != samples[i-1].Lifetime {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], s)
	}
	return out
}

// Verdict is the growth rule applied to one lifetime.
type Verdict struct {
	// Lifetime is the one judged, 0 when none had minSamples samples.
	Lifetime int
	// Lines say per metric what was compared; Findings what grew.
	Lines, Findings []string
}

// Judge applies the growth rule.
func Judge(samples []Sample) Verdict {
	var judged, rest []Sample
	for _, g := range byLifetime(samples) {
		if len(g) < minSamples {
			continue
		}
		r := atRest(g)
		if judged == nil || len(r) > len(rest) {
			judged, rest = g, r
		}
	}
	if judged == nil {
		return Verdict{Lines: []string{fmt.Sprintf("not judged: no supervisor lifetime had %d samples", minSamples)}}
	}
	v := Verdict{Lifetime: judged[0].Lifetime}
	span := judged[len(judged)-1].At.Sub(judged[0].At)
	if len(rest) < 2*minCompared {
		v.Findings = append(v.Findings, fmt.Sprintf("growth not judged: lifetime %d (%s) had %d samples at rest after its warm-up, fewer than %d",
			v.Lifetime, span.Round(time.Second), len(rest), 2*minCompared))
		return v
	}
	earlier, later := rest[:len(rest)/2], rest[len(rest)/2:]
	metrics := []struct {
		name   string
		value  func(Sample) float64
		format func(float64) string
	}{
		{"rss", func(s Sample) float64 { return float64(s.RSS) }, MiB},
		{"goroutines", func(s Sample) float64 { return s.Goroutines }, count},
		{"fds", func(s Sample) float64 { return s.FDs }, count},
	}
	for _, m := range metrics {
		before, after := median(earlier, m.value), median(later, m.value)
		limit := before + max(before*relTolerance, absTolerance[m.name])
		line := fmt.Sprintf("%s: median %s in the earlier half at rest, %s in the later (limit %s); lifetime %d of %s, %d and %d samples",
			m.name, m.format(before), m.format(after), m.format(limit), v.Lifetime, span.Round(time.Second), len(earlier), len(later))
		v.Lines = append(v.Lines, line)
		if after > limit {
			v.Findings = append(v.Findings, "the supervisor's "+line)
		}
	}
	return v
}

// atRest are the quiet samples of one lifetime after its first third.
func atRest(lifetime []Sample) []Sample {
	from := lifetime[0].At
	warm := from.Add(lifetime[len(lifetime)-1].At.Sub(from) / 3)
	var out []Sample
	for _, s := range lifetime {
		if s.Quiet && !s.At.Before(warm) {
			out = append(out, s)
		}
	}
	return out
}

func median(samples []Sample, value func(Sample) float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	vs := make([]float64, len(samples))
	for i, s := range samples {
		vs[i] = value(s)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// MiB formats bytes as MiB with one decimal.
func MiB(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func count(v float64) string { return fmt.Sprintf("%.0f", v) }
