package check

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/wa-sidecar/wa-sidecar/soak/driver"
)

// archiveName is an archived auth directory: <org>_<reason>_<unix-ms>.
var archiveName = regexp.MustCompile(`^(.+)_(corrupted|loggedout|deleted)_([0-9]+)$`)

// Archives checks that every Bad MAC trip left a <org>_corrupted_<ms>
// directory and every LOGOUT a <org>_loggedout_<ms> one, none pruned (the
// soak config keeps them all) and none empty, that nothing was archived
// for a reason the run never caused, and that every organization still
// has its live auth directory (the run ends with all of them linked).
func Archives(stateDir string, orgs []driver.Org, j *driver.Journal) (archives int, findings []string) {
	root := filepath.Join(stateDir, "auth_sessions")
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0, []string{fmt.Sprintf("archives: %v", err)}
	}
	count := map[[2]string]int{}
	live := map[string]bool{}
	for _, e := range entries {
		m := archiveName.FindStringSubmatch(e.Name())
		if m == nil {
			live[e.Name()] = e.IsDir()
			continue
		}
		archives++
		count[[2]string{m[1], m[2]}]++
		if empty, err := isEmptyDir(filepath.Join(root, e.Name())); err != nil {
			findings = append(findings, fmt.Sprintf("archives: %v", err))
		} else if empty {
			findings = append(findings, fmt.Sprintf("archives: %s is empty: the auth store it held is gone", e.Name()))
		}
	}
	for _, o := range orgs {
		want := map[string]int{"corrupted": j.Trips(o.ID), "loggedout": j.Logouts(o.ID), "deleted": 0}
		for reason, n := range want {
			if got := count[[2]string{o.ID, reason}]; got != n {
				findings = append(findings, fmt.Sprintf("archives: %s has %d %s archives, the run caused %d", o.ID, got, reason, n))
			}
		}
		if !live[o.ID] {
			findings = append(findings, fmt.Sprintf("archives: %s's live auth directory is missing", o.ID))
		}
	}
	return archives, findings
}

func isEmptyDir(path string) (bool, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return false, fmt.Errorf("read archive %s: %w", filepath.Base(path), err)
	}
	return len(entries) == 0, nil
}
