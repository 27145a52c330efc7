//go:build web

package e2e

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/nestbot/nestbot/internal/webconsole"
	"github.com/nestbot/nestbot/nostrx"
)

// pageView is what web/test/browser.mjs saw the page show after one step.
type pageView struct {
	Step       string   `json:"step"`
	Outcome    *string  `json:"outcome"`
	Title      string   `json:"title"`
	Text       string   `json:"text"`
	Links      []string `json:"links"`
	AdoptShown bool     `json:"adoptShown"`
	Status     *struct {
		Live, Participants, Record string
	} `json:"status"`
	Signer string `json:"signer"`
}

type browserRun struct {
	Steps []pageView `json:"steps"`
	// Progress is what the page showed while the signer held the request.
	Progress struct {
		Text            string `json:"text"`
		Busy            string `json:"busy"`
		RestartDisabled bool   `json:"restartDisabled"`
	} `json:"progress"`
	Console     []string `json:"console"`
	SignerCalls []string `json:"signerCalls"`
	A11y        struct {
		Unnamed []string `json:"unnamed"`
		Lang    string   `json:"lang"`
		Focus   string   `json:"focus"`
	} `json:"a11y"`
}

func (r browserRun) step(t *testing.T, name string) pageView {
	t.Helper()
	for _, s := range r.Steps {
		if s.Step == name {
			return s
		}
	}
	t.Fatalf("the browser run has no %q step: %+v\nconsole: %v", name, r.Steps, r.Console)
	return pageView{}
}

func (v pageView) outcome() string {
	if v.Outcome == nil {
		return ""
	}
	return *v.Outcome
}

// webPage builds the page (web/build.mjs, esbuild) and serves it with the
// same handler `make run` uses, configured for w's bot.
func webPage(t *testing.T, w *world) (dir, base string) {
	t.Helper()
	dir = jsDir(t, "web")
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("CHROMIUM") == "" {
		t.Fatal("/usr/bin/chromium is missing: run devstack/install.sh (make deps)")
	}
	runNode(t, dir, nil, "build.mjs")
	h, err := webconsole.Handler(dir, webconsole.Config{Bot: w.botPub(), Relays: w.relayURLs(), WebURL: "https://nests.example"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return dir, srv.URL
}

// browse opens the page for room as the holder of sk and returns what it showed.
func browse(t *testing.T, dir, base, name, sk, room string, adopt bool, query ...string) browserRun {
	t.Helper()
	in, _ := json.Marshal(map[string]any{
		"url": base + "/?room=" + url.QueryEscape(room) + strings.Join(query, ""),
		"sk":  sk, "name": name, "adopt": adopt,
		"screenshots": filepath.Join(dir, "test", "screenshots"),
	})
	var run browserRun
	out := runNode(t, dir, []string{"NESTBOT_WEB_TEST=" + string(in)}, "test/browser.mjs")
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("browser output is not JSON: %v: %s", err, out)
	}
	t.Logf("%s: %d steps, signer calls %v; screenshots in %s", name, len(run.Steps), run.SignerCalls, filepath.Join(dir, "test", "screenshots"))
	// Whatever the scenario: no script error or CSP refusal, every control
	// named for assistive technology, the outcome focused.
	for _, line := range run.Console {
		if strings.HasPrefix(line, "pageerror") || strings.HasPrefix(line, "error") {
			t.Errorf("the page logged %q", line)
		}
	}
	if len(run.A11y.Unnamed) > 0 || run.A11y.Lang != "en" || (run.A11y.Focus != "outcome" && run.A11y.Focus != "adopt") {
		t.Errorf("accessibility: %+v", run.A11y)
	}
	return run
}

// TestWebConsole drives the restart page in headless Chromium with a NIP-07
// shim signing as the host (or a stranger), against the real stack.
func TestWebConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack, node and chromium (make deps)")
	}
	w := jsWorld(t)
	dir, base := webPage(t, w)
	host, stranger := newUser(t), newUser(t)

	t.Run("restart in place", func(t *testing.T) {
		id := uuid.NewString()
		w.nestsRecord(id, host.pk, nil, nil)
		before := w.createLiveRoom(id)
		run := browse(t, dir, base, "inplace", host.sk, coord(host.pk, id).Naddr(w.relays[0].URL), false)

		st := run.step(t, "connect").Status
		if st == nil || st.Live != "Yes" || st.Record != "Present" || st.Participants != "0" {
			t.Fatalf("status shown: %+v", st)
		}
		if p := run.Progress; !strings.Contains(p.Text, "signer") || p.Busy != "true" || !p.RestartDisabled {
			t.Fatalf("while the signer held the request the page showed %+v", p)
		}
		v := run.step(t, "restart")
		if v.outcome() != "restarted" || !strings.Contains(v.Title, "Restarted") || !strings.Contains(v.Text, "same address") {
			t.Fatalf("restart shown: %+v", v)
		}
		after := w.liveRoom(id)
		if after == nil || after.Sid == before.Sid {
			t.Fatalf("LiveKit room %s: SID before %s, after %v: not recreated", id, before.Sid, after)
		}
	})

	t.Run("new ID and take the room back", func(t *testing.T) {
		oldID := uuid.NewString()
		publishLocalRoom(t, w, host, oldID)
		run := browse(t, dir, base, "newid", host.sk, "nostr:"+coord(host.pk, oldID).Naddr(w.relays[0].URL), true)

		v := run.step(t, "restart")
		if v.outcome() != "recreated" || !strings.Contains(v.Title, "new ID") || len(v.Links) == 0 ||
			!strings.HasPrefix(v.Links[0], "https://nests.example/naddr1") {
			t.Fatalf("restart shown: %+v", v)
		}
		_, data, err := nip19.Decode(strings.TrimPrefix(v.Links[0], "https://nests.example/"))
		if err != nil {
			t.Fatalf("the page's link holds no naddr: %v", err)
		}
		newID := data.(nostr.EntityPointer).Identifier
		if newID == oldID || !strings.Contains(v.Text, newID) || w.liveRoom(newID) == nil {
			t.Fatalf("new room %q (old %s): not a live new room, or not shown", newID, oldID)
		}

		// Whether the page should have offered adoption is the bot's answer's
		// business: read that answer from the relay as the host.
		if !answerHasTemplate(t, w, host) {
			if v.AdoptShown {
				t.Fatal("the page offers to take the room back although the answer has no template")
			}
			t.Skip("the bot's answer has no `template` (adoption, issue 12, is not in this build): the new-ID half passed, adoption is not tested")
		}
		if !v.AdoptShown {
			t.Fatal("the answer has a template but the page does not offer to take the room back")
		}
		a := run.step(t, "adopt")
		if a.outcome() != "adopted" || !strings.Contains(a.Title, "yours again") {
			t.Fatalf("adopt shown: %+v", a)
		}
		evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{host.pk}, Tags: nostr.TagMap{"d": {newID}}})
		if len(evs) == 0 {
			t.Fatalf("no host-signed 30312 for the new room %s on the relay", newID)
		}
		if ok, err := evs[0].CheckSignature(); !ok || err != nil {
			t.Fatalf("the host's 30312 does not verify: %v", err)
		}
	})

	t.Run("stranger is refused in words", func(t *testing.T) {
		id := uuid.NewString()
		w.nestsRecord(id, host.pk, nil, nil)
		before := w.createLiveRoom(id)
		run := browse(t, dir, base, "stranger", stranger.sk, coord(host.pk, id).Naddr(w.relays[0].URL), false)
		v := run.step(t, "restart")
		if v.outcome() != "refused" || !strings.Contains(v.Title, "not your room") ||
			!strings.Contains(v.Text, "host or one of its admins") || !strings.Contains(v.Text, "nestbot said:") {
			t.Fatalf("refusal shown: %+v", v)
		}
		if after := w.liveRoom(id); after == nil || after.Sid != before.Sid {
			t.Fatalf("a stranger's restart changed the LiveKit room: %v → %v", before.Sid, after)
		}
	})
}

// TestWebConsoleTimeout opens the page for a bot that is not there: the
// page must say so in words instead of waiting forever.
func TestWebConsoleTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack, node and chromium (make deps)")
	}
	w := jsWorld(t)
	dir, base := webPage(t, w)
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	absent := newUser(t) // a bot key nobody runs
	run := browse(t, dir, base, "timeout", host.sk, coord(host.pk, id).Naddr(w.relays[0].URL), false,
		"&bot="+nostrx.Npub(absent.pk), "&timeout=2000")
	v := run.step(t, "restart")
	if v.outcome() != "timeout" || v.Title != "No answer from nestbot" || !strings.Contains(v.Text, "did not answer within 2 seconds") {
		t.Fatalf("timeout shown: %+v", v)
	}
	if _, rec := w.record(id); rec == nil {
		t.Fatal("the record vanished although no bot answered")
	}
}

// answerHasTemplate reads u's newest restart answer from the relay and says
// whether its result carries a `template`.
func answerHasTemplate(t *testing.T, w *world, u *user) bool {
	t.Helper()
	evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}, Authors: []string{w.botPub()}, Tags: nostr.TagMap{"p": {u.pk}}})
	var newest *nostr.Event
	var result map[string]json.RawMessage
	for _, ev := range evs {
		p, err := nostrx.OpenResponse(u.signer, w.botPub(), ev)
		if err != nil || p.ResultType != "restart" || len(p.Result) == 0 {
			continue
		}
		var r map[string]json.RawMessage
		if json.Unmarshal(p.Result, &r) != nil || string(r["isNewRoom"]) != "true" {
			continue
		}
		if newest == nil || ev.CreatedAt > newest.CreatedAt {
			newest, result = ev, r
		}
	}
	if newest == nil {
		t.Fatal("no new-ID restart answer for the host on the relay")
	}
	_, ok := result["template"]
	return ok
}
