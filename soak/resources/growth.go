package resources

import (
	"fmt"
	"slices"
	"time"
)

// The growth rule. A supervisor restart resets memory, goroutines and
// files, so only samples of one lifetime are compared, and only the
// longest lifetime is judged (the schedule keeps restarts out of the
// second half of the run, so it is at least half the run). Its first third
// is warm-up (workers relinking, SQLite's page cache filling) and ignored.
// Each live worker holds goroutines and files in the supervisor, and the
// schedule keeps some organizations relinking most of the time, so only
// samples taken in the schedule's quiet pauses (every organization
// connected, no event under way, sends going on) are compared: the level
// the supervisor returns to at rest. The median of those in the last third
// may exceed the median of those in the middle third by at most the larger
// of a relative and an absolute tolerance. The absolute floor keeps a few goroutines or files of
// difference on a small base from counting as growth.
const (
	relTolerance = 0.10
	minSamples   = 15
	// minCompared is the least number of samples per third the medians
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

// Verdict is the growth rule applied to the longest lifetime.
type Verdict struct {
	// Lifetime is the one judged, 0 when none had minSamples samples.
	Lifetime int
	// Lines say per metric what was compared; Findings what grew.
	Lines, Findings []string
}

// Judge applies the growth rule.
func Judge(samples []Sample) Verdict {
	var longest []Sample
	for _, g := range byLifetime(samples) {
		if len(g) >= minSamples && (longest == nil || g[len(g)-1].At.Sub(g[0].At) > longest[len(longest)-1].At.Sub(longest[0].At)) {
			longest = g
		}
	}
	if longest == nil {
		return Verdict{Lines: []string{fmt.Sprintf("not judged: no supervisor lifetime had %d samples", minSamples)}}
	}
	v := Verdict{Lifetime: longest[0].Lifetime}
	from, span := longest[0].At, longest[len(longest)-1].At.Sub(longest[0].At)
	var middle, last []Sample
	for _, s := range longest {
		if !s.Quiet {
			continue
		}
		switch third := s.At.Sub(from) * 3 / span; {
		case third == 1:
			middle = append(middle, s)
		case third >= 2:
			last = append(last, s)
		}
	}
	if len(middle) < minCompared || len(last) < minCompared {
		v.Findings = append(v.Findings, fmt.Sprintf("growth not judged: lifetime %d had %d and %d samples at rest in its middle and last thirds, fewer than %d",
			v.Lifetime, len(middle), len(last), minCompared))
		return v
	}
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
		mid, end := median(middle, m.value), median(last, m.value)
		limit := mid + max(mid*relTolerance, absTolerance[m.name])
		line := fmt.Sprintf("%s: median %s in the middle third, %s in the last (limit %s); lifetime %d of %s, %d and %d samples at rest",
			m.name, m.format(mid), m.format(end), m.format(limit), v.Lifetime, span.Round(time.Second), len(middle), len(last))
		v.Lines = append(v.Lines, line)
		if end > limit {
			v.Findings = append(v.Findings, "the supervisor's "+line)
		}
	}
	return v
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
