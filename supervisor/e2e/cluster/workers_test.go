package clustere2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
)

// Workers maps each organization to the live worker processes of every
// supervisor this harness started, killed ones included (a worker that
// outlived its supervisor would still hold the session).
func (e *Env) Workers() map[string][]int {
	e.mu.Lock()
	sups := make(map[int]bool, len(e.supPIDs))
	for p := range e.supPIDs {
		sups[p] = true
	}
	e.mu.Unlock()
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(wa-worker") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) < 1 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		var org string
		var sup int
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "WA_SIDECAR_ORG="); ok {
				org = v
			}
			if v, ok := strings.CutPrefix(kv, contract.SupervisorPIDEnv+"="); ok {
				sup, _ = strconv.Atoi(v)
			}
		}
		if org != "" && sups[sup] {
			out[org] = append(out[org], pid)
		}
	}
	return out
}

// Sampler watches the worker processes of all nodes every few
// milliseconds for as long as a test runs, and remembers any moment one
// organization had two of them.
type Sampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	twice   []string
}

// SampleWorkers starts a Sampler; Finish stops it and fails the test if
// an organization ever ran twice.
func (e *Env) SampleWorkers() *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			w := e.Workers()
			s.mu.Lock()
			s.samples++
			for org, pids := range w {
				if len(pids) > 1 && len(s.twice) < 10 {
					s.twice = append(s.twice, fmt.Sprintf("%s in pids %v", org, pids))
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return s
}

// Finish stops the sampling and fails the test if an organization ran in
// two worker processes at one moment.
func (s *Sampler) Finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples < 10 {
		t.Errorf("only %d samples of the worker processes were taken", s.samples)
	}
	if len(s.twice) > 0 {
		t.Errorf("an organization ran in two worker processes at once: %v", s.twice)
	}
}

// WaitNoWorkers fails unless every worker of the harness's supervisors is gone.
func (e *Env) WaitNoWorkers() {
	e.T.Helper()
	e.Eventually(20*time.Second, "no worker process left", func() error {
		if w := e.Workers(); len(w) > 0 {
			return fmt.Errorf("workers still running: %v", w)
		}
		return nil
	})
}
