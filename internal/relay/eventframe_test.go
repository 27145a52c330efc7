package relay

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// An EventFrame is ["EVENT", ev] that decodes to the very event, whatever
// its content holds (quotes, HTML, control characters, non-ASCII), with a
// valid id and signature: what encoding/json's form of the same message
// decodes to.
func TestEventFrame(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	ev := nostr.Event{Kind: 4313, CreatedAt: 1700000000, Content: "a \"quoted\" <b>&amp;</b>\n\t\u0001 ünï 🎙 \\ \u2028",
		Tags: nostr.Tags{{"e", "x"}, {"p", "<y>"}, {"expiration", "1700000600"}}}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	f, err := NewEventFrame(&ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal([]any{"EVENT", &ev})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) (string, nostr.Event) {
		t.Helper()
		var parts []json.RawMessage
		if err := json.Unmarshal(b, &parts); err != nil || len(parts) != 2 {
			t.Fatalf("%s: %v (%d parts)", b, err, len(parts))
		}
		var label string
		var got nostr.Event
		if err := json.Unmarshal(parts[0], &label); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(parts[1], &got); err != nil {
			t.Fatal(err)
		}
		return label, got
	}
	label, got := decode(f.Bytes())
	_, ref := decode(want)
	if label != "EVENT" || !reflect.DeepEqual(got, ev) || !reflect.DeepEqual(got, ref) {
		t.Fatalf("frame %s decodes to %q %+v, want EVENT %+v", f.Bytes(), label, got, ev)
	}
	if ok, err := got.CheckSignature(); !ok || err != nil || !got.CheckID() {
		t.Fatalf("decoded event does not verify: %v", err)
	}
	if f.Event != &ev {
		t.Fatal("the frame does not carry its event")
	}
}

// An answer-sized event (NIP-44 content of about 1.4 KB): NewEventFrame
// against the json.Marshal of the message that conn.write did per relay.
func benchEvent(b *testing.B) *nostr.Event {
	ev := &nostr.Event{Kind: 4313, CreatedAt: 1700000000, Content: randomBase64(1400),
		Tags: nostr.Tags{{"e", nostr.GeneratePrivateKey()}, {"p", nostr.GeneratePrivateKey()}, {"expiration", "1700000600"}}}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		b.Fatal(err)
	}
	return ev
}

func randomBase64(n int) string {
	const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out := make([]byte, n)
	for i := range out {
		out[i] = abc[(i*7919)%len(abc)]
	}
	return string(out)
}

func BenchmarkEventFrame(b *testing.B) {
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewEventFrame(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventJSONMarshal(b *testing.B) {
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal([]any{"EVENT", ev}); err != nil {
			b.Fatal(err)
		}
	}
}

// reqFrame and closeFrame encode what encoding/json's form of the same
// messages decodes to: the label, the id and each filter field by field.
func TestReqAndCloseFrames(t *testing.T) {
	since := nostr.Timestamp(1700000000)
	filters := nostr.Filters{
		{Kinds: []int{10050, 10002}, Authors: []string{"aa", "bb"}, Limit: 8},
		{Kinds: []int{4312}, Tags: nostr.TagMap{"p": []string{"<cc>"}, "e": []string{"d\"d"}}, Since: &since, IDs: []string{"ee"}},
	}
	got, err := reqFrame("q7", filters)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal([]any{"REQ", "q7", filters[0], filters[1]})
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) (label, id string, fs nostr.Filters) {
		t.Helper()
		var parts []json.RawMessage
		if err := json.Unmarshal(b, &parts); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if err := json.Unmarshal(parts[0], &label); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(parts[1], &id); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts[2:] {
			var f nostr.Filter
			if err := json.Unmarshal(p, &f); err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		return
	}
	l1, id1, f1 := decode(got)
	l2, id2, f2 := decode(want)
	if l1 != "REQ" || id1 != "q7" || !reflect.DeepEqual(f1, f2) || l1 != l2 || id1 != id2 || len(f1) != 2 || !nostr.FilterEqual(f1[0], filters[0]) || !nostr.FilterEqual(f1[1], filters[1]) {
		t.Fatalf("REQ frame %s decodes to %s %s %+v, want %s", got, l1, id1, f1, want)
	}
	var cl []string
	if err := json.Unmarshal(closeFrame("q\"7"), &cl); err != nil || !reflect.DeepEqual(cl, []string{"CLOSE", "q\"7"}) {
		t.Fatalf("CLOSE frame %s: %v %v", closeFrame("q\"7"), cl, err)
	}
}
