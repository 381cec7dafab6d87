package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// fakeCluster answers the list and moves each organization to "c" unless
// it is in refuse.
type fakeCluster struct {
	orgs        []state.Snapshot
	unreachable []string
	refuse      map[string]bool
	moved       []string
}

func (f *fakeCluster) ListCluster(context.Context) ([]state.Snapshot, []string, error) {
	return f.orgs, f.unreachable, nil
}

func (f *fakeCluster) Move(_ context.Context, id, to string) (state.Snapshot, error) {
	if to != "" {
		return state.Snapshot{}, errors.New("a drain lets the placement pick")
	}
	if f.refuse[id] {
		return state.Snapshot{}, errors.New("move_failed: it stays on node a")
	}
	f.moved = append(f.moved, id)
	return state.Snapshot{OrganizationID: id, Node: "c", Status: state.Connected}, nil
}

func TestDrainMovesEveryOrganizationOffTheNode(t *testing.T) {
	f := &fakeCluster{orgs: []state.Snapshot{
		{OrganizationID: "1", Node: "a"}, {OrganizationID: "2", Node: "b"}, {OrganizationID: "3", Node: "a"}, {OrganizationID: "4", Node: "a"},
	}, refuse: map[string]bool{"3": true}}
	var out bytes.Buffer
	err := drain(context.Background(), f, "a", &out)
	if err == nil || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("drain with one failure: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "1\tmoved to c") || !strings.HasPrefix(lines[1], "3\tnot moved") || !strings.HasPrefix(lines[2], "4\tmoved to c") {
		t.Fatalf("drain output:\n%s", out.String())
	}
	if strings.Join(f.moved, ",") != "1,4" {
		t.Fatalf("moved %v", f.moved)
	}
}

func TestDrainOfAnEmptyNode(t *testing.T) {
	var out bytes.Buffer
	if err := drain(context.Background(), &fakeCluster{}, "a", &out); err != nil || !strings.Contains(out.String(), "owns no organizations") {
		t.Fatalf("drain of an empty node: %v, %q", err, out.String())
	}
}

// A node that is down is missing from the cluster's list; its drain used
// to say "owns no organizations" and succeed.
func TestDrainOfANodeThatDoesNotAnswer(t *testing.T) {
	f := &fakeCluster{orgs: []state.Snapshot{{OrganizationID: "1", Node: "b"}}, unreachable: []string{"a"}}
	var out bytes.Buffer
	err := drain(context.Background(), f, "a", &out)
	if err == nil || !strings.Contains(err.Error(), "node a does not answer") || out.Len() != 0 || len(f.moved) != 0 {
		t.Fatalf("drain of a node that does not answer: %v, %q, moved %v", err, out.String(), f.moved)
	}
}
