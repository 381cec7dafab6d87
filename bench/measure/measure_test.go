package measure

import (
	"os"
	"strings"
	"testing"
	"time"
)

const rollup = `55b487118000-7ffe0d230000 ---p 00000000 00:00 0                          [rollup]
Rss:                1644 kB
Pss:                 367 kB
Pss_Dirty:           116 kB
Pss_Anon:            116 kB
Pss_File:            251 kB
Shared_Clean:       1472 kB
`

func TestParseRollup(t *testing.T) {
	m, err := parseRollup(strings.NewReader(rollup))
	if err != nil {
		t.Fatal(err)
	}
	want := Memory{RSS: 1644 << 10, PSS: 367 << 10, PSSAnon: 116 << 10, PSSFile: 251 << 10}
	if m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	if _, err := parseRollup(strings.NewReader("Shared_Clean: 1 kB\n")); err == nil {
		t.Fatal("a rollup without Rss and Pss was accepted")
	}
	if _, err := parseRollup(strings.NewReader("Rss: 1 MB\nPss: 1 kB\n")); err == nil {
		t.Fatal("a unit other than kB was accepted")
	}
}

func TestReadMemorySelf(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Skipf("no smaps_rollup here: %v", err)
	}
	if m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Fatalf("implausible: %+v", m)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	in := []float64{3, 1, 2}
	Median(in)
	if in[0] != 3 {
		t.Error("Median sorted its argument")
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 2000)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond
	}
	if got := Percentile(ds, 50); got != 1000*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := Percentile(ds, 99); got != 1980*time.Millisecond {
		t.Errorf("p99 = %v", got)
	}
	if got := Percentile(ds, 100); got != 2000*time.Millisecond {
		t.Errorf("p100 = %v", got)
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}
