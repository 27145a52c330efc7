package nostrx

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func TestScreen(t *testing.T) {
	good := signed(t, hostSK, requestEvent())
	tests := []struct {
		name string
		edit func(ev *nostr.Event)
		want error
	}{
		{"valid", func(*nostr.Event) {}, nil},
		{"wrong kind", func(ev *nostr.Event) { ev.Kind = 4313 }, ErrWrongKind},
		{"kind 1", func(ev *nostr.Event) { ev.Kind = 1 }, ErrWrongKind},
		{"id too short", func(ev *nostr.Event) { ev.ID = ev.ID[:63] }, ErrMalformed},
		{"id empty", func(ev *nostr.Event) { ev.ID = "" }, ErrMalformed},
		{"id not hex", func(ev *nostr.Event) { ev.ID = "zz" + ev.ID[2:] }, ErrMalformed},
		{"id uppercase hex", func(ev *nostr.Event) { ev.ID = strings.ToUpper(ev.ID) }, ErrMalformed},
		{"pubkey uppercase hex", func(ev *nostr.Event) { ev.PubKey = strings.ToUpper(ev.PubKey) }, ErrMalformed},
		{"pubkey too short", func(ev *nostr.Event) { ev.PubKey = ev.PubKey[:62] }, ErrMalformed},
		{"pubkey too long", func(ev *nostr.Event) { ev.PubKey += "00" }, ErrMalformed},
		{"pubkey not hex", func(ev *nostr.Event) { ev.PubKey = "g" + ev.PubKey[1:] }, ErrMalformed},
		{"pubkey npub", func(ev *nostr.Event) { ev.PubKey = Npub(ev.PubKey) }, ErrMalformed},
		{"sig short", func(ev *nostr.Event) { ev.Sig = ev.Sig[:126] }, ErrMalformed},
		{"sig missing", func(ev *nostr.Event) { ev.Sig = "" }, ErrMalformed},
		{"no p tag", func(ev *nostr.Event) { ev.Tags = ev.Tags[:1] }, ErrNotAddressed},
		{"p names someone else", func(ev *nostr.Event) { ev.Tags[1] = nostr.Tag{"p", otherPK} }, ErrNotAddressed},
		{"p names the bot in uppercase", func(ev *nostr.Event) { ev.Tags[1] = nostr.Tag{"p", strings.ToUpper(botPK)} }, ErrNotAddressed},
		{"p without value", func(ev *nostr.Event) { ev.Tags[1] = nostr.Tag{"p"} }, ErrNotAddressed},
		{"bot only in an e tag", func(ev *nostr.Event) { ev.Tags[1] = nostr.Tag{"e", botPK} }, ErrNotAddressed},
		{"bot among several p tags", func(ev *nostr.Event) {
			ev.Tags = append(nostr.Tags{{"p", otherPK}}, ev.Tags...)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := good
			ev.Tags = append(nostr.Tags{}, good.Tags...)
			tt.edit(&ev)
			err := Screen(&ev, DefaultRequestKind, botPK)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Screen = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckFresh(t *testing.T) {
	now := testNow.Unix()
	tests := []struct {
		name    string
		created int64
		exp     []string // the expiration tag after its name; nil for none
		want    error
	}{
		{"now", now, nil, nil},
		{"oldest allowed", now - 120, nil, nil},
		{"one second too old", now - 121, nil, ErrStale},
		{"an hour old", now - 3600, nil, ErrStale},
		{"zero created_at", 0, nil, ErrStale},
		{"latest allowed", now + 60, nil, nil},
		{"one second too far ahead", now + 61, nil, ErrFuture},
		{"a day ahead", now + 86400, nil, ErrFuture},
		{"expires in a second", now, []string{unix(now + 1)}, nil},
		{"expires far ahead", now, []string{unix(now + 1e9)}, nil},
		{"expires now", now, []string{unix(now)}, ErrExpired},
		{"expired a second ago", now, []string{unix(now - 1)}, ErrExpired},
		{"expiration zero", now, []string{"0"}, ErrExpired},
		{"expiration negative", now, []string{"-5"}, ErrExpired},
		{"expiration not a number", now, []string{"tomorrow"}, ErrExpired},
		{"expiration empty", now, []string{""}, ErrExpired},
		{"expiration float", now, []string{"1760000100.5"}, ErrExpired},
		{"expiration exponent", now, []string{"2e9"}, ErrExpired},
		{"expiration overflows int64", now, []string{"99999999999999999999"}, ErrExpired},
		{"expiration tag without value is ignored", now, []string{}, nil},
		{"stale wins over a valid expiration", now - 121, []string{unix(now + 10)}, ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := requestEvent()
			ev.CreatedAt = nostr.Timestamp(tt.created)
			if tt.exp != nil {
				ev.Tags = append(ev.Tags, append(nostr.Tag{"expiration"}, tt.exp...))
			}
			err := CheckFresh(&ev, testNow, testMaxAge)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("CheckFresh = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCheckFreshMaxAgeIsAParameter(t *testing.T) {
	ev := requestEvent()
	ev.CreatedAt = ts(testNow.Add(-10 * time.Minute))
	if err := CheckFresh(&ev, testNow, 10*time.Minute); err != nil {
		t.Fatalf("10 min old with max age 10 min: %v", err)
	}
	if err := CheckFresh(&ev, testNow, 10*time.Minute-time.Second); !errors.Is(err, ErrStale) {
		t.Fatalf("10 min old with max age 9m59s: %v, want ErrStale", err)
	}
}

func TestVerify(t *testing.T) {
	good := signed(t, hostSK, requestEvent())
	other := signed(t, hostSK, NewRequest(DefaultRequestKind, botPK, testRoom, ActionStatus, "", "", ts(testNow), 0))
	tests := []struct {
		name string
		edit func(ev *nostr.Event)
		want error
	}{
		{"valid", func(*nostr.Event) {}, nil},
		// A forged id: every field and the signature are genuine, only the id
		// names another (valid-looking, even validly signed) event.
		{"id of another signed event", func(ev *nostr.Event) { ev.ID = other.ID }, ErrBadID},
		{"id of all zeros", func(ev *nostr.Event) { ev.ID = hexOf('0', 64) }, ErrBadID},
		{"id uppercase", func(ev *nostr.Event) { ev.ID = strings.ToUpper(ev.ID) }, ErrBadID},
		{"id empty", func(ev *nostr.Event) { ev.ID = "" }, ErrBadID},
		{"tag changed after signing", func(ev *nostr.Event) { ev.Tags[2] = nostr.Tag{"action", "status"} }, ErrBadID},
		{"content changed after signing", func(ev *nostr.Event) { ev.Content = "x" }, ErrBadID},
		{"created_at changed after signing", func(ev *nostr.Event) { ev.CreatedAt++ }, ErrBadID},
		{"kind changed after signing", func(ev *nostr.Event) { ev.Kind++ }, ErrBadID},
		{"tag changed and id recomputed", func(ev *nostr.Event) {
			ev.Tags[2] = nostr.Tag{"action", "status"}
			ev.ID = ev.GetID()
		}, ErrBadSignature},
		{"pubkey swapped and id recomputed", func(ev *nostr.Event) {
			ev.PubKey = otherPK
			ev.ID = ev.GetID()
		}, ErrBadSignature},
		{"signature of another event", func(ev *nostr.Event) { ev.Sig = other.Sig }, ErrBadSignature},
		{"signature bit flipped", func(ev *nostr.Event) {
			b := []byte(ev.Sig)
			b[10] ^= 1
			ev.Sig = string(b)
		}, ErrBadSignature},
		{"signature not hex", func(ev *nostr.Event) { ev.Sig = hexOf('z', 128) }, ErrBadSignature},
		{"signature empty", func(ev *nostr.Event) { ev.Sig = "" }, ErrBadSignature},
		{"pubkey not on the curve, id recomputed", func(ev *nostr.Event) {
			ev.PubKey = hexOf('f', 64)
			ev.ID = ev.GetID()
		}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := good
			ev.Tags = append(nostr.Tags{}, good.Tags...)
			tt.edit(&ev)
			err := Verify(&ev)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	a := nostr.Tag{"a", testRoomStr}
	p := nostr.Tag{"p", botPK}
	restart := nostr.Tag{"action", "restart"}
	coord := func(s string) nostr.Tag { return nostr.Tag{"a", s} }
	tests := []struct {
		name    string
		tags    []nostr.Tag
		content string
		code    Code // "" for success
		check   func(t *testing.T, req Request)
	}{
		{"restart", []nostr.Tag{a, p, restart}, "", "", func(t *testing.T, req Request) {
			if req.Action != ActionRestart || req.Room.String() != testRoomStr || req.RelayHint != "" || req.Expiration != 0 {
				t.Fatalf("got %+v", req)
			}
		}},
		{"status", []nostr.Tag{a, p, {"action", "status"}}, "", "", func(t *testing.T, req Request) {
			if req.Action != ActionStatus {
				t.Fatalf("action %q", req.Action)
			}
		}},
		{"tag order does not matter", []nostr.Tag{restart, p, a}, "", "", nil},
		{"relay hint kept", []nostr.Tag{{"a", testRoomStr, "wss://relay.example.com"}, p, restart}, "", "", func(t *testing.T, req Request) {
			if req.RelayHint != "wss://relay.example.com" {
				t.Fatalf("hint %q", req.RelayHint)
			}
		}},
		{"non-websocket relay hint dropped", []nostr.Tag{{"a", testRoomStr, "https://relay.example.com"}, p, restart}, "", "", func(t *testing.T, req Request) {
			if req.RelayHint != "" {
				t.Fatalf("hint %q", req.RelayHint)
			}
		}},
		{"reason kept", []nostr.Tag{a, p, restart}, "audio froze", "", func(t *testing.T, req Request) {
			if req.Reason != "audio froze" {
				t.Fatalf("reason %q", req.Reason)
			}
		}},
		{"expiration read", []nostr.Tag{a, p, restart, {"expiration", "1760000300"}}, "", "", func(t *testing.T, req Request) {
			if req.Expiration != 1760000300 {
				t.Fatalf("expiration %d", req.Expiration)
			}
		}},
		{"content of 1024 bytes", []nostr.Tag{a, p, restart}, strings.Repeat("x", 1024), "", nil},
		{"content of 1024 bytes, multibyte", []nostr.Tag{a, p, restart}, strings.Repeat("é", 512), "", nil},
		{"d of 128 characters", []nostr.Tag{coord("30312:" + hostPK + ":" + strings.Repeat("d", 128)), p, restart}, "", "", nil},
		{"d of one character", []nostr.Tag{coord("30312:" + hostPK + ":x"), p, restart}, "", "", nil},
		{"d with dots, dashes and underscores", []nostr.Tag{coord("30312:" + hostPK + ":My.Room_1-a"), p, restart}, "", "", nil},
		{"extra unknown tags ignored", []nostr.Tag{a, p, restart, {"client", "x"}, {}, {"t"}}, "", "", nil},

		{"content of 1025 bytes", []nostr.Tag{a, p, restart}, strings.Repeat("x", 1025), CodeBadRequest, nil},
		{"content of 1025 bytes, multibyte", []nostr.Tag{a, p, restart}, strings.Repeat("é", 512) + "x", CodeBadRequest, nil},
		{"no a tag", []nostr.Tag{p, restart}, "", CodeBadRequest, nil},
		{"two a tags", []nostr.Tag{a, a, p, restart}, "", CodeBadRequest, nil},
		{"two different a tags", []nostr.Tag{a, coord("30312:" + otherPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"a tag without value", []nostr.Tag{{"a"}, p, restart}, "", CodeBadRequest, nil},
		{"no action tag", []nostr.Tag{a, p}, "", CodeBadRequest, nil},
		{"two action tags", []nostr.Tag{a, p, restart, restart}, "", CodeBadRequest, nil},
		{"two different action tags", []nostr.Tag{a, p, restart, {"action", "status"}}, "", CodeBadRequest, nil},
		{"coordinate of kind 30311", []nostr.Tag{coord("30311:" + hostPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"coordinate of kind 1", []nostr.Tag{coord("1:" + hostPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"coordinate kind with leading zero", []nostr.Tag{coord("030312:" + hostPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"coordinate kind with plus sign", []nostr.Tag{coord("+30312:" + hostPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"coordinate kind not a number", []nostr.Tag{coord("room:" + hostPK + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"uppercase hex author", []nostr.Tag{coord("30312:" + strings.ToUpper(hostPK) + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"author of 63 hex", []nostr.Tag{coord("30312:" + hostPK[:63] + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"author as npub", []nostr.Tag{coord("30312:" + Npub(hostPK) + ":x"), p, restart}, "", CodeBadRequest, nil},
		{"no d", []nostr.Tag{coord("30312:" + hostPK), p, restart}, "", CodeBadRequest, nil},
		{"empty d", []nostr.Tag{coord("30312:" + hostPK + ":"), p, restart}, "", CodeBadRequest, nil},
		{"d of 129 characters", []nostr.Tag{coord("30312:" + hostPK + ":" + strings.Repeat("d", 129)), p, restart}, "", CodeBadRequest, nil},
		{"d with a space", []nostr.Tag{coord("30312:" + hostPK + ":my room"), p, restart}, "", CodeBadRequest, nil},
		{"d with a slash", []nostr.Tag{coord("30312:" + hostPK + ":a/b"), p, restart}, "", CodeBadRequest, nil},
		{"d with a colon", []nostr.Tag{coord("30312:" + hostPK + ":a:b"), p, restart}, "", CodeBadRequest, nil},
		{"d with non-ASCII", []nostr.Tag{coord("30312:" + hostPK + ":salle-é"), p, restart}, "", CodeBadRequest, nil},
		{"d with a newline", []nostr.Tag{coord("30312:" + hostPK + ":a\n"), p, restart}, "", CodeBadRequest, nil},
		{"naddr instead of coordinate", []nostr.Tag{coord(testRoom.Naddr()), p, restart}, "", CodeBadRequest, nil},

		{"reserved action kick", []nostr.Tag{a, p, {"action", "kick"}}, "", CodeNotImplemented, nil},
		{"actions are case-sensitive", []nostr.Tag{a, p, {"action", "Restart"}}, "", CodeNotImplemented, nil},
		{"empty action", []nostr.Tag{a, p, {"action", ""}}, "", CodeBadRequest, nil},
		{"action without value", []nostr.Tag{a, p, {"action"}}, "", CodeBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := signed(t, hostSK, withTags(nostr.Event{Kind: DefaultRequestKind, CreatedAt: ts(testNow), Content: tt.content}, tt.tags...))
			req, err, silent := admission(&ev)
			if silent {
				t.Fatalf("dropped silently: %v", err)
			}
			if req.ID != ev.ID || req.Requester != hostPK || req.CreatedAt != ev.CreatedAt {
				t.Fatalf("identity not carried: %+v", req)
			}
			if tt.code == "" {
				if err != nil {
					t.Fatalf("ParseRequest: %v", err)
				}
				if tt.check != nil {
					tt.check(t, req)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}

// A NOT_IMPLEMENTED answer still names the room, so it carries an "a" tag.
func TestParseRequestNotImplementedKeepsRoom(t *testing.T) {
	ev := signed(t, hostSK, NewRequest(DefaultRequestKind, botPK, testRoom, "mute", "", "", ts(testNow), 0))
	req, err := ParseRequest(&ev)
	wantCode(t, err, CodeNotImplemented)
	if req.Room.String() != testRoomStr || req.Action != "mute" {
		t.Fatalf("got %+v", req)
	}
}

// TestAdmission is the bad-input corpus: every rule, through the bot's whole
// pipeline, classified as dropped silently or answered with a code.
func TestAdmission(t *testing.T) {
	now := testNow.Unix()
	type tc struct {
		name   string
		ev     nostr.Event
		silent error // sentinel for silent drops
		code   Code  // code for answered refusals; "" with silent nil = accepted
	}
	req := func(edit func(ev *nostr.Event)) nostr.Event {
		ev := requestEvent()
		edit(&ev)
		return signed(t, hostSK, ev)
	}
	good := req(func(*nostr.Event) {})
	forged := good
	forged.Tags = append(nostr.Tags{}, good.Tags...)
	forged.Tags[2] = nostr.Tag{"action", "status"} // id and sig left as they were
	badSig := good
	badSig.Sig = signed(t, otherSK, requestEvent()).Sig

	cases := []tc{
		{"valid restart", good, nil, ""},
		{"valid status", req(func(ev *nostr.Event) { ev.Tags[2][1] = ActionStatus }), nil, ""},
		{"wrong kind", req(func(ev *nostr.Event) { ev.Kind = 1 }), ErrWrongKind, ""},
		{"response kind", req(func(ev *nostr.Event) { ev.Kind = DefaultResponseKind }), ErrWrongKind, ""},
		{"not addressed to the bot", req(func(ev *nostr.Event) { ev.Tags[1][1] = otherPK }), ErrNotAddressed, ""},
		{"no p tag", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags[:1:1], ev.Tags[2]) }), ErrNotAddressed, ""},
		{"stale", req(func(ev *nostr.Event) { ev.CreatedAt = nostr.Timestamp(now - 121) }), ErrStale, ""},
		{"stale boundary", req(func(ev *nostr.Event) { ev.CreatedAt = nostr.Timestamp(now - 120) }), nil, ""},
		{"future", req(func(ev *nostr.Event) { ev.CreatedAt = nostr.Timestamp(now + 61) }), ErrFuture, ""},
		{"future boundary", req(func(ev *nostr.Event) { ev.CreatedAt = nostr.Timestamp(now + 60) }), nil, ""},
		{"expired", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", unix(now - 1)}) }), ErrExpired, ""},
		{"expiring now", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", unix(now)}) }), ErrExpired, ""},
		{"malformed expiration", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", "soon"}) }), ErrExpired, ""},
		{"not yet expired", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", unix(now + 30)}) }), nil, ""},
		{"forged id", forged, ErrBadID, ""},
		{"bad signature", badSig, ErrBadSignature, ""},
		{"bad hex pubkey", func() nostr.Event { e := good; e.PubKey = strings.ToUpper(e.PubKey); return e }(), ErrMalformed, ""},
		{"bad hex id", func() nostr.Event { e := good; e.ID = "x" + e.ID[1:]; return e }(), ErrMalformed, ""},
		{"missing a tag", req(func(ev *nostr.Event) { ev.Tags = ev.Tags[1:] }), nil, CodeBadRequest},
		{"repeated a tag", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, ev.Tags[0]) }), nil, CodeBadRequest},
		{"missing action tag", req(func(ev *nostr.Event) { ev.Tags = ev.Tags[:2] }), nil, CodeBadRequest},
		{"repeated action tag", req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, ev.Tags[2]) }), nil, CodeBadRequest},
		{"content 1024", req(func(ev *nostr.Event) { ev.Content = strings.Repeat("r", 1024) }), nil, ""},
		{"content 1025", req(func(ev *nostr.Event) { ev.Content = strings.Repeat("r", 1025) }), nil, CodeBadRequest},
		{"coordinate of the wrong kind", req(func(ev *nostr.Event) { ev.Tags[0][1] = "30311:" + hostPK + ":x" }), nil, CodeBadRequest},
		{"uppercase hex author", req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + strings.ToUpper(hostPK) + ":x" }), nil, CodeBadRequest},
		{"forbidden d characters", req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + hostPK + ":room#1" }), nil, CodeBadRequest},
		{"d of 128", req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + hostPK + ":" + strings.Repeat("a", 128) }), nil, ""},
		{"d of 129", req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + hostPK + ":" + strings.Repeat("a", 129) }), nil, CodeBadRequest},
		{"reserved action", req(func(ev *nostr.Event) { ev.Tags[2][1] = "kick" }), nil, CodeNotImplemented},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := c.ev
			_, err, silent := admission(&ev)
			switch {
			case c.silent != nil:
				if !silent || !errors.Is(err, c.silent) {
					t.Fatalf("got %v (silent %v), want silent %v", err, silent, c.silent)
				}
				var re *RequestError
				if errors.As(err, &re) {
					t.Fatalf("silent drop carries a RequestError: %v", err)
				}
			case c.code != "":
				if silent {
					t.Fatalf("dropped silently (%v), want an answer with %s", err, c.code)
				}
				wantCode(t, err, c.code)
			default:
				if err != nil {
					t.Fatalf("rejected: %v (silent %v)", err, silent)
				}
			}
		})
	}
}

func TestNewRequest(t *testing.T) {
	hint := "wss://relay.example.com"
	ev := NewRequest(DefaultRequestKind, botPK, testRoom, ActionRestart, hint, "why", ts(testNow), ts(testNow)+30)
	want := nostr.Tags{{"a", testRoomStr, hint}, {"p", botPK}, {"action", "restart"}, {"expiration", unix(testNow.Unix() + 30)}}
	if fmt.Sprint(ev.Tags) != fmt.Sprint(want) {
		t.Fatalf("tags %v, want %v", ev.Tags, want)
	}
	if ev.Kind != DefaultRequestKind || ev.Content != "why" || ev.CreatedAt != ts(testNow) {
		t.Fatalf("event %+v", ev)
	}
	ev = signed(t, hostSK, ev)
	req, err, silent := admission(&ev)
	if err != nil {
		t.Fatalf("own request rejected: %v (silent %v)", err, silent)
	}
	if req.RelayHint != hint || req.Reason != "why" || req.Expiration != ts(testNow)+30 || req.Room.String() != testRoomStr {
		t.Fatalf("got %+v", req)
	}

	bare := NewRequest(DefaultRequestKind, botPK, testRoom, ActionStatus, "", "", ts(testNow), 0)
	want = nostr.Tags{{"a", testRoomStr}, {"p", botPK}, {"action", "status"}}
	if fmt.Sprint(bare.Tags) != fmt.Sprint(want) {
		t.Fatalf("tags %v, want %v", bare.Tags, want)
	}
}

func TestCodeOf(t *testing.T) {
	re := Refuse(CodeRateLimited, "at most %d requests per minute", 5)
	if re.Error() != "RATE_LIMITED: at most 5 requests per minute" {
		t.Fatalf("Error() = %q", re.Error())
	}
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"request error", re, CodeRateLimited},
		{"wrapped", fmt.Errorf("admit: %w", re), CodeRateLimited},
		{"joined with a cause", errors.Join(Refuse(CodeUnavailable, "later"), errors.New("redis down")), CodeUnavailable},
		{"plain error", errors.New("boom"), CodeInternal},
		{"silent sentinel", ErrStale, CodeInternal},
		{"nil", nil, CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("%s: CodeOf = %s, want %s", tt.name, got, tt.want)
		}
	}
}
