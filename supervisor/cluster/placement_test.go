package cluster

import (
	"errors"
	"fmt"
	"testing"
)

func members(spec ...any) []Member {
	var out []Member
	for i := 0; i < len(spec); i += 3 {
		out = append(out, Member{Node: spec[i].(string), Capacity: spec[i+1].(int), Live: spec[i+2].(bool)})
	}
	return out
}

func TestPlaceTable(t *testing.T) {
	three := members("a", 10, true, "b", 10, true, "c", 10, true)
	cases := []struct {
		name    string
		org     string
		members []Member
		owned   map[string]int
		want    string // "" = any of the allowed
		allowed []string
		err     error
	}{
		{name: "no members", org: "1", err: ErrFull},
		{name: "one live node", org: "1", members: members("a", 5, true), want: "a"},
		{name: "dead node skipped", org: "1", members: members("a", 5, false, "b", 5, true), want: "b"},
		{name: "full node skipped", org: "1", members: members("a", 5, true, "b", 5, true), owned: map[string]int{"a": 5}, want: "b"},
		{name: "zero capacity skipped", org: "1", members: members("a", 0, true, "b", 1, true), want: "b"},
		{name: "all full", org: "1", members: members("a", 1, true, "b", 1, true), owned: map[string]int{"a": 1, "b": 1}, err: ErrFull},
		{name: "all dead", org: "1", members: members("a", 1, false), err: ErrFull},
		{name: "some live node", org: "42", members: three, allowed: []string{"a", "b", "c"}},
	}
	for _, c := range cases {
		got, err := Place(c.org, c.members, c.owned)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			continue
		}
		if c.want != "" && got != c.want {
			t.Errorf("%s: placed on %q, want %q", c.name, got, c.want)
		}
		if c.allowed != nil && !contains(c.allowed, got) {
			t.Errorf("%s: placed on %q, not one of %v", c.name, got, c.allowed)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Rendezvous hashing: the answer does not depend on the members' order,
// and a node leaving moves only what it held.
func TestPlaceIsStableAndMinimal(t *testing.T) {
	all := members("a", 10, true, "b", 10, true, "c", 10, true)
	reversed := []Member{all[2], all[1], all[0]}
	without := members("a", 10, true, "b", 10, true, "c", 10, false)
	for i := range 500 {
		org := fmt.Sprint(i)
		p1, _ := Place(org, all, nil)
		p2, _ := Place(org, reversed, nil)
		if p1 != p2 {
			t.Fatalf("org %s: order changed the placement: %s vs %s", org, p1, p2)
		}
		p3, _ := Place(org, without, nil)
		if p1 != "c" && p3 != p1 {
			t.Fatalf("org %s: c leaving moved it from %s to %s", org, p1, p3)
		}
	}
}

// The capacity weighs the placement: a node of thrice the capacity takes
// about thrice as many new organizations, and equal nodes about as many.
func TestPlaceWeighsCapacity(t *testing.T) {
	ms := members("small", 10, true, "big", 30, true, "other", 10, true)
	count := map[string]int{}
	const n = 6000
	for i := range n {
		p, err := Place(fmt.Sprintf("org-%d", i), ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		count[p]++
	}
	// Expected 1200 / 3600 / 1200; the bounds leave room for hashing noise.
	if count["big"] < 3300 || count["big"] > 3900 || count["small"] < 1000 || count["small"] > 1400 || count["other"] < 1000 || count["other"] > 1400 {
		t.Errorf("placements %v are not weighted 1:3:1", count)
	}
}
