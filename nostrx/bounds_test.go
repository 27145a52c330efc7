package nostrx

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// TestParseRoomEventBounds (issue 9 item 6): every field the bot copies is
// bounded, whatever the event says.
func TestParseRoomEventBounds(t *testing.T) {
	author := mustPublic(keyFor("author"))
	tags := nostr.Tags{{"d", "r"}, {"room", strings.Repeat("é", 2<<20)}, {"summary", strings.Repeat("s", 1<<20)},
		{"image", "https://x/" + strings.Repeat("i", 1<<20)}, {"color", strings.Repeat("c", 1000)}}
	for i := range 100 {
		tags = append(tags, nostr.Tag{"t", fmt.Sprint("topic", i)})
	}
	relays := nostr.Tag{"relays"}
	for i := range 100 {
		relays = append(relays, fmt.Sprintf("wss://r%d.example", i))
	}
	relays = append(relays, "wss://"+strings.Repeat("x", 1000))
	tags = append(tags, relays)
	for i := range 100 {
		tags = append(tags, nostr.Tag{fmt.Sprint("x", i), "v"})
	}
	tags = append(tags, nostr.Tag{"big", strings.Repeat("b", MaxCopiedTagBytes+1)})
	r, err := ParseRoomEvent(&nostr.Event{Kind: KindRoom, PubKey: author, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Title) > MaxTitleBytes || !strings.HasPrefix(r.Title, "é") || !utf8Valid(r.Title) {
		t.Errorf("title %d bytes", len(r.Title))
	}
	if len(r.Summary) > MaxSummaryBytes || r.Image != "" || r.Color != "" {
		t.Errorf("summary %d bytes, image %d, color %q", len(r.Summary), len(r.Image), r.Color)
	}
	if len(r.Topics) != MaxTopics || len(r.Relays) != MaxRoomRelays || len(r.Extra) != MaxCopiedTags {
		t.Errorf("topics %d, relays %d, copied tags %d", len(r.Topics), len(r.Relays), len(r.Extra))
	}
	for _, tag := range r.Extra {
		if tag[0] == "big" {
			t.Error("a tag over the field bound was copied")
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestBuildRoomEventCapsSpeakersKeepsAdmins: the host and every admin are
// written, speakers up to MaxSpeakerTags.
func TestBuildRoomEventCapsSpeakersKeepsAdmins(t *testing.T) {
	spec := RoomSpec{D: "r", Host: hexOf('a', 64)}
	for i := range 1500 {
		spec.Admins = append(spec.Admins, fmt.Sprintf("%064x", i+1))
		spec.Speakers = append(spec.Speakers, fmt.Sprintf("%064x", 100000+i))
	}
	ev := BuildRoomEvent(spec, 1)
	roles := map[string]int{}
	for p := range ev.Tags.FindAll("p") {
		roles[p[3]]++
	}
	if roles["Host"] != 1 || roles["Admin"] != 1500 || roles["Speaker"] != MaxSpeakerTags {
		t.Fatalf("roles %v", roles)
	}
}

// TestRestartPayloadFitsNIP44 (issue 9 item 6): a result embedding a room
// event of about 1,000 participants drops "event" and "template" so that
// the payload encrypts; a small one keeps both. BuildResponse never fails
// on size.
func TestRestartPayloadFitsNIP44(t *testing.T) {
	spec := RoomSpec{D: "r", Host: hexOf('a', 64), Relays: []string{"wss://relay.example.com"}}
	for i := range 1000 {
		spec.Speakers = append(spec.Speakers, fmt.Sprintf("%064x", i+1))
	}
	big := BuildRoomEvent(spec, 1)
	small := BuildRoomEvent(RoomSpec{D: "r", Host: hexOf('a', 64)}, 1)
	res := func(ev nostr.Event) RestartResult {
		return RestartResult{RoomID: "r", Token: "t", Naddr: "naddr1x", Event: &ev,
			Template: &EventTemplate{Kind: KindRoom, CreatedAt: 1, Tags: ev.Tags}}
	}
	p, err := ResultPayload(ActionRestart, res(big))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(p)
	var got RestartResult
	json.Unmarshal(p.Result, &got)
	if len(body) > MaxPayloadBytes || got.Event != nil || got.Template != nil || got.Naddr != "naddr1x" || got.Token != "t" {
		t.Fatalf("%d bytes; event kept %v, template kept %v", len(body), got.Event != nil, got.Template != nil)
	}
	p, _ = ResultPayload(ActionRestart, res(small))
	json.Unmarshal(p.Result, &got)
	if got.Event == nil || got.Template == nil {
		t.Fatal("a small result lost its event or template")
	}

	bot := mustSigner(t, keyFor("bot"), 4)
	me := mustSigner(t, keyFor("me"), 4)
	huge := Payload{ResultType: ActionRestart, Result: json.RawMessage(`"` + strings.Repeat("x", 70000) + `"`)}
	ev, err := BuildResponse(bot, ResponseSpec{Kind: 4313, Requester: me.PublicKey(), RequestID: hexOf('e', 64), CreatedAt: 1, TTL: 60e9}, huge)
	if err != nil {
		t.Fatalf("an oversized payload got no answer: %v", err)
	}
	open, err := OpenResponse(me, bot.PublicKey(), &ev)
	if err != nil || open.Error == nil || open.Error.Code != CodeInternal {
		t.Fatalf("%+v %v", open, err)
	}
}

// TestVocabularyRoundTrip (issue 12 point 2): a live/lowercase room stays
// live/lowercase, closes as "ended", and keeps the tags the bot does not own.
func TestVocabularyRoundTrip(t *testing.T) {
	host := mustPublic(keyFor("host"))
	orig := &nostr.Event{Kind: KindRoom, PubKey: host, Tags: nostr.Tags{
		{"d", "r"}, {"title", "Nest"}, {"status", "live"}, {"p", host, "", "host"}, {"p", hexOf('b', 64), "", "speaker"},
		{"c", "#112233", "background"}, {"bg", "https://x/bg.png", "tile"}, {"f", "Inter", "https://x/inter.woff"},
		{"starts", "1700000000"}, {"ends", "1700003600"}, {"recording", "https://x/rec.mp3"},
		{"auth", "https://moq-auth.example"}, {"expiration", "1"}, {"-"},
	}}
	r, err := ParseRoomEvent(orig)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Vocab.Live || !r.Vocab.LowerRoles || r.Starts != 1700000000 {
		t.Fatalf("vocab %+v starts %d", r.Vocab, r.Starts)
	}
	spec := RoomSpec{D: "n", Title: r.Title, Status: StatusOpen, Host: host, Speakers: []string{hexOf('b', 64)}, Vocab: r.Vocab, Extra: r.Extra, Starts: r.Starts}
	ev := BuildRoomEvent(spec, 2)
	if ev.Tags.Find("status")[1] != "live" || ev.Tags.Find("p")[3] != "host" {
		t.Fatalf("tags %v", ev.Tags)
	}
	for _, k := range []string{"c", "bg", "f", "ends", "recording"} {
		if ev.Tags.Find(k) == nil {
			t.Errorf("tag %s dropped", k)
		}
	}
	for _, k := range []string{"auth", "expiration", "-"} {
		if ev.Tags.Find(k) != nil {
			t.Errorf("tag %s copied", k)
		}
	}
	back, err := SpecFromEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	again := BuildRoomEvent(back, 2)
	a, _ := json.Marshal(ev.Tags)
	b, _ := json.Marshal(again.Tags)
	if string(a) != string(b) {
		t.Fatalf("round trip\n%s\n%s", a, b)
	}
	back.Status = StatusClosed
	if closed := BuildRoomEvent(back, 3); closed.Tags.Find("status")[1] != "ended" {
		t.Fatalf("closed as %v", closed.Tags.Find("status"))
	}
	// A room written in NIP-53's words keeps them.
	plain := BuildRoomEvent(RoomSpec{D: "n", Host: host, Status: StatusClosed}, 1)
	if plain.Tags.Find("status")[1] != "closed" || plain.Tags.Find("p")[3] != "Host" {
		t.Fatalf("defaults %v", plain.Tags)
	}
}
