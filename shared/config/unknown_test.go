package config

import (
	"strings"
	"testing"
)

func TestUnknownKeyNamesLineAndNearestKey(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"typo in a table", "[workers]\nmax_live = 2\nmax_lives = 3\n", "line 3: unknown key workers.max_lives (did you mean workers.max_live?)"},
		{"top level", "# c\nstate_dri = \"/x\"\n", "line 2: unknown key state_dri (did you mean state_dir?)"},
		{"dotted key", "workers.crash_limt = 2\n", "line 1: unknown key workers.crash_limt (did you mean workers.crash_limit?)"},
		{"quoted and spaced", "[ api ]\n\"lisen\" = \"x\"\n", "line 2: unknown key api.lisen (did you mean api.listen?)"},
		{"array table", "[[org]]\nid = \"2\"\n[[org]]\nid = \"3\"\nproxxy = \"\"\n", "line 5: unknown key org.proxxy (did you mean org.proxy?)"},
		{"nothing close", "[workers]\nbananas = 1\n", "line 2: unknown key workers.bananas"},
		{"unknown table named once", "[wrokers]\nmax_live = 1\n", "line 1: unknown key wrokers (did you mean workers?)"},
		{"emulator", "[whatsapp.emulator]\nurll = \"http://x\"\n", "line 2: unknown key whatsapp.emulator.urll (did you mean whatsapp.emulator.url?)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, c.body))
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.HasSuffix(msg, ": "+c.want) {
				t.Fatalf("got %q, want it to end in %q", msg, c.want)
			}
			if c.name == "nothing close" && strings.Contains(msg, "did you mean") {
				t.Fatalf("a guess for a key nothing like a known one: %q", msg)
			}
		})
	}
}

func TestClosestKey(t *testing.T) {
	known := []string{"workers.max_live", "workers.max_orgs", "qr.give_up_after"}
	cases := map[string]string{
		"workers.max_lives": "workers.max_live",
		"workers.max_org":   "workers.max_orgs",
		"qr.give_up":        "",
		"x":                 "",
	}
	for in, want := range cases {
		if got := closestKey(in, known); got != want {
			t.Errorf("closestKey(%q) = %q, want %q", in, got, want)
		}
	}
}
