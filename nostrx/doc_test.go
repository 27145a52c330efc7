package nostrx

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// docs/protocol.md is the same contract for client authors. Its examples
// must stay true: signed events verify and mean what the text says, payloads
// decode, and the code set is complete.
func TestProtocolDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d json blocks", len(blocks))
	}
	var events, payloads int
	for _, b := range blocks {
		body := b[1]
		if strings.Contains(body, `"sig"`) {
			var ev nostr.Event
			if err := json.Unmarshal([]byte(body), &ev); err != nil {
				t.Fatalf("event example: %v\n%s", err, body)
			}
			events++
			if err := Verify(&ev); err != nil {
				t.Fatalf("event example %s does not verify: %v", ev.ID, err)
			}
			switch ev.Kind {
			case DefaultRequestKind:
				if err := Screen(&ev, DefaultRequestKind, botPK); err != nil {
					t.Fatalf("request example: %v", err)
				}
				if err := CheckFresh(&ev, ev.CreatedAt.Time(), 120*time.Second); err != nil {
					t.Fatalf("request example: %v", err)
				}
				if _, err := ParseRequest(&ev); err != nil {
					t.Fatalf("request example: %v", err)
				}
			case KindRoom:
				r, err := ParseRoomEvent(&ev)
				if err != nil {
					t.Fatalf("room example: %v", err)
				}
				// It is exactly what BuildRoomEvent writes for what it says.
				var admins, speakers []string
				for pk, role := range r.Roles {
					switch role {
					case RoleAdmin:
						admins = append(admins, pk)
					case RoleSpeaker:
						speakers = append(speakers, pk)
					}
				}
				slices.Sort(admins)
				slices.Sort(speakers)
				orig, err := ParseCoordinate(ev.Tags.Find("a")[1])
				if err != nil {
					t.Fatal(err)
				}
				starts, err := strconv.ParseInt(ev.Tags.Find("starts")[1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				rebuilt := BuildRoomEvent(RoomSpec{
					D: r.Room.D, Title: r.Title, Summary: r.Summary, Topics: r.Topics, Status: r.Status, Service: r.Service,
					Streaming: r.Streaming[0], Starts: starts, Relays: r.Relays, Host: hostsOf(r)[1], Admins: admins,
					Speakers: speakers, Replaces: &orig,
				}, ev.CreatedAt)
				a, _ := json.Marshal(ev.Tags)
				c, _ := json.Marshal(rebuilt.Tags)
				if string(a) != string(c) {
					t.Fatalf("room example tags\n%s\ndiffer from BuildRoomEvent\n%s", a, c)
				}
			default:
				t.Fatalf("unexpected example kind %d", ev.Kind)
			}
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n\n") {
			var lines []string
			if strings.HasPrefix(line, `{"result_type"`) {
				lines = strings.Split(line, "\n")
			} else {
				lines = []string{line}
			}
			for _, l := range lines {
				var p Payload
				if err := json.Unmarshal([]byte(l), &p); err != nil {
					t.Fatalf("payload example: %v\n%s", err, l)
				}
				payloads++
				if p.ResultType != ActionRestart && p.ResultType != ActionStatus {
					t.Fatalf("result_type %q", p.ResultType)
				}
				if (p.Error == nil) == (len(p.Result) == 0) {
					t.Fatalf("example has both or neither of result and error:\n%s", l)
				}
				if p.Error != nil && !strings.Contains(doc, "| `"+string(p.Error.Code)+"` |") {
					t.Fatalf("example code %s is not in the code table", p.Error.Code)
				}
				if p.Result != nil && !strings.Contains(l, `"event"`) { // the event example is abridged
					var r any = &RestartResult{}
					if p.ResultType == ActionStatus {
						r = &StatusResult{}
					}
					dec := json.NewDecoder(strings.NewReader(string(p.Result)))
					dec.DisallowUnknownFields()
					if err := dec.Decode(r); err != nil {
						t.Fatalf("%s result example: %v", p.ResultType, err)
					}
				}
			}
		}
	}
	if events != 2 || payloads < 9 {
		t.Fatalf("checked %d events and %d payloads", events, payloads)
	}
	for _, code := range []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeRateLimited, CodeNotImplemented, CodeUnavailable, CodeInternal} {
		if !strings.Contains(doc, "| `"+string(code)+"` |") {
			t.Errorf("code %s has no row in the code table", code)
		}
	}
	for _, naddr := range regexp.MustCompile(`naddr1[02-9ac-hj-np-z]{20,}`).FindAllString(doc, -1) {
		c, err := ParseRoomAddress(naddr)
		if err != nil {
			t.Fatalf("doc naddr %s: %v", naddr, err)
		}
		if c.Author != hostPK && c.Author != botPK {
			t.Fatalf("doc naddr %s names %s", naddr, c.Author)
		}
	}
	for in, want := range map[string]string{
		"wss://lk.example.com": "wss+livekit://lk.example.com", "https://lk.example.com:443": "wss+livekit://lk.example.com:443",
		"ws://127.0.0.1:7880": "ws+livekit://127.0.0.1:7880", "http://127.0.0.1:7880": "ws+livekit://127.0.0.1:7880",
	} {
		if got, _ := LiveKitEndpoint(in); got != want || !strings.Contains(doc, "| `"+in+"` | `"+want+"` |") {
			t.Errorf("endpoint row %s → %s (code says %s)", in, want, got)
		}
	}
}
