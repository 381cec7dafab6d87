package schedule

import (
	"reflect"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	const length = 9 * time.Minute
	for _, orgs := range []int{2, 3, 5} {
		for seed := uint64(1); seed <= 50; seed++ {
			p := New(seed, length, orgs)
			if !reflect.DeepEqual(p, New(seed, length, orgs)) {
				t.Fatalf("seed %d: two plans", seed)
			}
			if p.FinalLogout == p.FinalBadMAC || p.FinalLogout >= orgs || p.FinalBadMAC >= orgs {
				t.Fatalf("seed %d, %d orgs: final holds on %d and %d", seed, orgs, p.FinalLogout, p.FinalBadMAC)
			}
			quiet := 0
			var last time.Duration
			for _, ev := range p.Events {
				if ev.At < last || ev.At >= length {
					t.Fatalf("seed %d: event at %s after %s, run of %s", seed, ev.At, last, length)
				}
				last = ev.At
				switch ev.Kind {
				case RestartTerm, RestartKill:
					if ev.At >= length/2 {
						t.Fatalf("seed %d: a restart at %s, in the second half", seed, ev.At)
					}
				case Quiet:
					quiet++
				}
				seen := map[int]bool{}
				for _, o := range ev.Orgs {
					if o < 0 || o >= orgs || seen[o] {
						t.Fatalf("seed %d, %d orgs: event %+v", seed, orgs, ev)
					}
					seen[o] = true
				}
			}
			// The growth rule needs pauses in the middle and last thirds
			// of the second half.
			if quiet < 10 {
				t.Fatalf("seed %d: %d quiet pauses in %s", seed, quiet, length)
			}
		}
	}
}
