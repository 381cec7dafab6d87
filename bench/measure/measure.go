// Package measure reads a process's memory from /proc and reduces repeated
// samples to medians and percentiles: the arithmetic every figure of
// `make bench` goes through, kept apart so that it is tested on its own.
package measure

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Memory is one process's resident memory in bytes, from smaps_rollup.
//
// RSS counts every page the process maps, shared or not; PSS divides each
// shared page by the number of processes mapping it, so the PSS of several
// workers adds up to what they cost the host together. The anon/file split
// of PSS tells the heap and stacks (anon) from the executable's pages
// (file), which workers running one binary share.
type Memory struct {
	RSS, PSS, PSSAnon, PSSFile int64
}

// Add returns the field-wise sum of m and o.
func (m Memory) Add(o Memory) Memory {
	return Memory{RSS: m.RSS + o.RSS, PSS: m.PSS + o.PSS, PSSAnon: m.PSSAnon + o.PSSAnon, PSSFile: m.PSSFile + o.PSSFile}
}

// ReadMemory reads /proc/<pid>/smaps_rollup, which the kernel sums over
// every mapping in one read, instead of walking /proc/<pid>/smaps.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	m, err := parseRollup(f)
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// parseRollup reads the "Name:   123 kB" lines it needs and fails unless
// Rss and Pss are both there: a kernel without them would otherwise yield
// a table of zeros.
func parseRollup(r io.Reader) (Memory, error) {
	var m Memory
	fields := map[string]*int64{"Rss": &m.RSS, "Pss": &m.PSS, "Pss_Anon": &m.PSSAnon, "Pss_File": &m.PSSFile}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		dst, want := fields[name]
		if !ok || !want {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		if unit != "kB" {
			return Memory{}, fmt.Errorf("smaps_rollup %s: unit %q, want kB", name, unit)
		}
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("smaps_rollup %s: %w", name, err)
		}
		*dst = kb << 10
		seen[name] = true
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("smaps_rollup: %w", err)
	}
	if !seen["Rss"] || !seen["Pss"] {
		return Memory{}, fmt.Errorf("smaps_rollup has no Rss or Pss line")
	}
	return m, nil
}

// Median returns the middle of xs (the mean of the two middle values for
// an even count), 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds,
// 0 for none: the smallest sample that at least p percent of the samples
// do not exceed, so p99 of 2,000 polls is the 1,980th fastest. ds is not
// modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(float64(len(s)) * p / 100))
	return s[min(max(rank, 1), len(s))-1]
}
