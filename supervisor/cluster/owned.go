package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/shared/private"
)

// ownedSet is what this node owns as far as it knows, kept in a file so
// that a node that boots while etcd is down still knows what it may run.
// It is updated before giving an organization away and after claiming
// one, so it never holds less than the truth would allow to run twice:
// it errs on the side of running less.
type ownedSet struct {
	path string
	mu   sync.Mutex
	orgs map[string]bool
}

func openOwned(dir string) (*ownedSet, error) {
	if err := private.Dir(dir); err != nil {
		return nil, fmt.Errorf("cluster state: %w", err)
	}
	s := &ownedSet{path: filepath.Join(dir, "owned.json"), orgs: map[string]bool{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster state: %w", err)
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("cluster state %s: %w", s.path, err)
	}
	for _, id := range ids {
		s.orgs[id] = true
	}
	return s, nil
}

func (s *ownedSet) has(org string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orgs[org]
}

// set records that org is owned or not, durably, before it returns.
func (s *ownedSet) set(org string, owned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orgs[org] == owned {
		return nil
	}
	if owned {
		s.orgs[org] = true
	} else {
		delete(s.orgs, org)
	}
	return s.saveLocked()
}

// replace makes the set exactly orgs; it writes only when that changes it.
func (s *ownedSet) replace(orgs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	same := len(orgs) == len(s.orgs)
	for _, o := range orgs {
		same = same && s.orgs[o]
	}
	if same {
		return nil
	}
	s.orgs = map[string]bool{}
	for _, o := range orgs {
		s.orgs[o] = true
	}
	return s.saveLocked()
}

func (s *ownedSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.orgs))
	for o := range s.orgs {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// saveLocked writes the set through a renamed temporary file, so a crash
// leaves the old set or the new one, never half of one.
func (s *ownedSet) saveLocked() error {
	ids := make([]string, 0, len(s.orgs))
	for o := range s.orgs {
		ids = append(ids, o)
	}
	slices.Sort(ids)
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save owned organizations: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save owned organizations: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save owned organizations: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save owned organizations: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("save owned organizations: %w", err)
	}
	return nil
}
