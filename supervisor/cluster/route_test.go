package cluster

import (
	"errors"
	"testing"
)

func TestDecideTable(t *testing.T) {
	down := Lookup{Err: ErrUnavailable}
	cases := []struct {
		name                          string
		l                             Lookup
		ownedHere, registers, forward bool
		want                          Decision
	}{
		{name: "owned here", l: Lookup{Owner: "me", Found: true}, want: Decision{Action: Local}},
		{name: "owned elsewhere", l: Lookup{Owner: "b", Found: true}, want: Decision{Action: Proxy, Node: "b"}},
		{name: "start of owned elsewhere", l: Lookup{Owner: "b", Found: true}, registers: true, want: Decision{Action: Proxy, Node: "b"}},
		{name: "forwarded but owned elsewhere", l: Lookup{Owner: "b", Found: true}, forward: true, want: Decision{Action: Misdirected, Node: "b"}},
		{name: "forwarded and owned here", l: Lookup{Owner: "me", Found: true}, forward: true, want: Decision{Action: Local}},
		{name: "unknown read", l: Lookup{}, want: Decision{Action: Local}},
		{name: "unknown start places", l: Lookup{}, registers: true, want: Decision{Action: PlaceIt}},
		{name: "forwarded start of nobody's", l: Lookup{}, registers: true, forward: true, want: Decision{Action: Misdirected}},
		{name: "etcd down, owned here", l: down, ownedHere: true, want: Decision{Action: Local}},
		{name: "etcd down, start of owned", l: down, ownedHere: true, registers: true, want: Decision{Action: Local}},
		{name: "etcd down, not owned", l: down, want: Decision{Action: Unavailable}},
		{name: "etcd down, registration", l: down, registers: true, want: Decision{Action: Unavailable}},
		{name: "etcd down, forwarded not owned", l: down, forward: true, want: Decision{Action: Unavailable}},
	}
	for _, c := range cases {
		if got := Decide("me", c.l, c.ownedHere, c.registers, c.forward); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestUnreachableErrorNamesTheNode(t *testing.T) {
	err := error(&UnreachableError{Node: "vps-3", Err: errors.New("connection refused")})
	var u *UnreachableError
	if !errors.As(err, &u) || u.Node != "vps-3" {
		t.Fatalf("%v", err)
	}
}
