package clustere2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// other returns a running node that is not name.
func (e *Env) other(name string) *Node {
	for _, n := range e.Nodes {
		if n.Name != name && n.Running() {
			return n
		}
	}
	e.T.Fatalf("no node besides %s", name)
	return nil
}

// moveAsync posts a move through n without failing from its goroutine;
// the answer arrives on the channel.
func (n *Node) moveAsync(org, to string) <-chan Response {
	ch := make(chan Response, 1)
	body, _ := json.Marshal(statusapi.MoveRequest{To: to})
	go func() {
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/v1/orgs/"+org+"/move", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", APIKey)
		resp, err := (&http.Client{Timeout: 2 * time.Minute, Transport: n.env.api.Transport}).Do(req)
		if err != nil {
			ch <- Response{Status: 0, Body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}()
	return ch
}

func await(t *testing.T, ch <-chan Response) Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("the move did not answer within 2 minutes")
		return Response{}
	}
}

// A connected organization moves with its session: the target connects
// the same linked device (same JID, no QR scanned), and the messages
// queued when the move began are sent from the target, each once.
func TestMoveOfAConnectedOrgKeepsItsJIDAndSendsQueuedOnce(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	const org, phone, to = "mover", "573000000201", "573001110001"
	jid := e.Nodes[0].Link(org, phone)
	from := e.Nodes[0].Owner(org)
	target := e.other(from)
	via := e.other(target.Name) // any node: the request goes to the owner

	const n = 30 // 6 s of sending at min_interval, far more than a stop takes
	var ids []string
	for i := range n {
		r := via.Do(http.MethodPost, "/v1/orgs/"+org+"/messages", map[string]string{"to": to, "text": fmt.Sprint("moved ", i)})
		if r.Status != http.StatusAccepted {
			t.Fatalf("send %d: %d %s", i, r.Status, r.Body)
		}
		var m statusapi.MessageBody
		r.JSON(t, &m)
		ids = append(ids, m.ID)
	}
	r := await(t, via.moveAsync(org, target.Name))
	if r.Status != http.StatusOK {
		t.Fatalf("move %s from %s to %s: %d %s", org, from, target.Name, r.Status, r.Body)
	}
	var moved state.Snapshot
	r.JSON(t, &moved)
	if moved.Node != target.Name {
		t.Fatalf("answered %+v, want the status on %s", moved, target.Name)
	}
	for _, node := range e.Nodes {
		if got := node.Owner(org); got != target.Name {
			t.Fatalf("owner through %s: %q, want %s", node.Name, got, target.Name)
		}
	}
	s := target.WaitStatus(org, state.Connected, 30*time.Second)
	if s.JID != jid {
		t.Fatalf("connected on the target as %s, was %s", s.JID, jid)
	}

	e.Eventually(60*time.Second, "every queued message sent", func() error {
		for _, id := range ids {
			r := via.Do(http.MethodGet, "/v1/orgs/"+org+"/messages/"+id, nil)
			var m statusapi.MessageBody
			if r.Status != http.StatusOK || json.Unmarshal(r.Body, &m) != nil {
				return fmt.Errorf("message %s: %d %s", id, r.Status, r.Body)
			}
			if m.Status != "sent" && m.Status != "delivered" && m.Status != "read" {
				return fmt.Errorf("message %s is %s %s", id, m.Status, m.Reason)
			}
		}
		return nil
	})
	var got []emulator.Delivery
	e.Control(http.MethodGet, "/control/devices/"+phone+"/sent", nil, &got)
	seen := map[string]int{}
	for _, d := range got {
		seen[d.Text]++
	}
	for i := range n {
		if c := seen[fmt.Sprint("moved ", i)]; c != 1 {
			t.Errorf("message %d reached the recipient %d times", i, c)
		}
	}
	if len(got) != n {
		t.Errorf("the recipient shows %d messages, want %d", len(got), n)
	}
	if sent := target.Metric("wa_sidecar_messages_sent_total", map[string]string{"org": org}); sent < 1 {
		t.Errorf("the target sent %v of the queued messages; the move should have left some to it", sent)
	}
	if c := e.Node(from).Metric("wa_sidecar_cluster_moves_total", map[string]string{"result": "ok"}); c != 1 {
		t.Errorf("moves counted ok on %s: %v", from, c)
	}
	sampler.Finish(t)
}

// A logged-out organization moves with its LOGOUT cooldown: the target
// answers a start with the same 409 until the cooldown ends.
func TestMoveOfALoggedOutOrgKeepsThe409(t *testing.T) {
	e := NewEnv(t, Options{Extra: ""})
	const org, phone = "gone", "573000000202"
	e.Nodes[0].Link(org, phone)
	from := e.Nodes[0].Owner(org)
	e.Control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	before := e.Nodes[0].WaitStatus(org, state.LoggedOut, 30*time.Second)
	if before.CooldownUntil == nil {
		t.Fatalf("logged out without a cooldown: %+v", before)
	}
	target := e.other(from)
	r := target.Do(http.MethodPost, "/v1/orgs/"+org+"/move", statusapi.MoveRequest{To: target.Name})
	if r.Status != http.StatusOK {
		t.Fatalf("move: %d %s", r.Status, r.Body)
	}
	after := target.Status(org)
	if after.Node != target.Name || after.Status != state.LoggedOut || after.CooldownUntil == nil || !after.CooldownUntil.Equal(before.CooldownUntil.Truncate(time.Millisecond)) {
		t.Fatalf("after the move: %+v, before %+v", after, before)
	}
	start := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+org+"/start", nil)
	if time.Now().Before(*before.CooldownUntil) {
		if start.Status != http.StatusConflict || start.Code() != "cooldown" || start.Header.Get("Retry-After") == "" {
			t.Fatalf("start during the moved cooldown: %d %s", start.Status, start.Body)
		}
	} else {
		t.Fatalf("the move outlasted the %s cooldown; nothing was checked", before.CooldownUntil.Sub(time.Now()))
	}
}

// The target is killed while the source hands it the organization: the
// owner never flips, the organization connects again on the source with
// its session, and the target, back, has nothing of it.
func TestAMoveThatFailsHalfwayLeavesTheOrgOnTheSource(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	const org, phone = "stays", "573000000203"
	jid := e.Nodes[0].Link(org, phone)
	from := e.Node(e.Nodes[0].Owner(org))
	target := e.other(from.Name)

	// Frozen, the target accepts the import's connection but never
	// answers; the source's stop for the move shows it is under way.
	if err := target.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	answer := from.moveAsync(org, target.Name)
	e.Eventually(30*time.Second, "the source to stop the worker for the move", func() error {
		if !from.Logs.Contains(`"org":"`+org+`"`) || !strings.Contains(from.Logs.String(), `"to":"stopped"`) {
			return fmt.Errorf("not stopped yet")
		}
		return nil
	})
	target.Kill()
	r := await(t, answer)
	if r.Status != http.StatusBadGateway || r.Code() != "move_failed" {
		t.Fatalf("move with the target killed: %d %s", r.Status, r.Body)
	}
	t.Logf("the move answered: %s", r.Body)
	if got := from.Owner(org); got != from.Name {
		t.Fatalf("owner after the failed move: %q, want %s", got, from.Name)
	}
	s := from.WaitStatus(org, state.Connected, 30*time.Second)
	if s.JID != jid || s.Node != from.Name {
		t.Fatalf("after the failed move: %+v, want connected as %s on %s", s, jid, from.Name)
	}
	if c := from.Metric("wa_sidecar_cluster_moves_total", map[string]string{"result": "failed"}); c != 1 {
		t.Errorf("moves counted failed on %s: %v", from.Name, c)
	}

	target.Start()
	e.WaitMembers(len(e.Nodes))
	if got := target.Status(org); got.Node != from.Name || got.Status != state.Connected {
		t.Fatalf("through the restarted target: %+v", got)
	}
	for _, l := range target.List() {
		if l.OrganizationID == org && l.Node != from.Name {
			t.Fatalf("the restarted target lists %s on %s", org, l.Node)
		}
	}
	sampler.Finish(t)
}

// A move without a target goes where the placement says among the other
// nodes (what drain does), and a move back onto the node that archived
// its copy works the same: the session survives both.
func TestMoveThereAndBack(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	const org, phone = "roundtrip", "573000000204"
	jid := e.Nodes[0].Link(org, phone)
	home := e.Nodes[0].Owner(org)

	r := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+org+"/move", map[string]string{})
	if r.Status != http.StatusOK {
		t.Fatalf("move without a target: %d %s", r.Status, r.Body)
	}
	var away state.Snapshot
	r.JSON(t, &away)
	if away.Node == "" || away.Node == home {
		t.Fatalf("moved from %s to %q", home, away.Node)
	}
	e.Node(away.Node).WaitStatus(org, state.Connected, 30*time.Second)

	r = e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+org+"/move", statusapi.MoveRequest{To: home})
	if r.Status != http.StatusOK {
		t.Fatalf("move back to %s: %d %s", home, r.Status, r.Body)
	}
	if s := e.Node(home).WaitStatus(org, state.Connected, 30*time.Second); s.JID != jid || s.Node != home {
		t.Fatalf("back home: %+v, want connected as %s on %s", s, jid, home)
	}
	if r := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+org+"/move", statusapi.MoveRequest{To: home}); r.Status != http.StatusBadRequest || r.Code() != "bad_body" {
		t.Fatalf("move to the node it is on: %d %s", r.Status, r.Body)
	}
	if r := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+org+"/move", statusapi.MoveRequest{To: "nowhere"}); r.Status != http.StatusBadRequest || r.Code() != "unknown_node" {
		t.Fatalf("move to an unknown node: %d %s", r.Status, r.Body)
	}
	if r := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/nobody/move", statusapi.MoveRequest{To: home}); r.Status != http.StatusNotFound {
		t.Fatalf("move of an unknown organization: %d %s", r.Status, r.Body)
	}
	sampler.Finish(t)
}

// wa-supervisor drain NODE, the real command against a real node, moves
// every organization off NODE, one line each, and they stay linked.
func TestDrainEmptiesANode(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	orgs := []string{"d-1", "d-2", "d-3", "d-4"}
	owners := linkAll(e, orgs)
	drained := owners[orgs[0]]
	var theirs []string
	for _, org := range orgs {
		if owners[org] == drained {
			theirs = append(theirs, org)
		}
	}
	via := e.other(drained)
	cfg := filepath.Join(e.Dir, "cli.toml")
	body := fmt.Sprintf("[api]\nlisten = %q\napi_key_file = %q\n", strings.TrimPrefix(via.URL, "http://"), filepath.Join(e.Dir, "api.key"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "wa-supervisor"), "drain", drained, "-config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("drain %s: %v\n%s", drained, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(theirs) {
		t.Fatalf("drain printed %d lines for %d organizations:\n%s", len(lines), len(theirs), out)
	}
	for _, org := range theirs {
		s := via.WaitStatus(org, state.Connected, 30*time.Second)
		if s.Node == drained || s.Node == "" {
			t.Fatalf("%s is still on %q after the drain", org, s.Node)
		}
		if !strings.Contains(string(out), org+"\tmoved to "+s.Node) {
			t.Errorf("no line says %s moved to %s:\n%s", org, s.Node, out)
		}
	}
	for _, s := range via.List() {
		if s.Node == drained {
			t.Errorf("%s still listed on %s", s.OrganizationID, drained)
		}
	}
	sampler.Finish(t)
}
