package bot

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
)

func TestIdentityTemplates(t *testing.T) {
	p := config.Profile{Name: "nestbot", About: "Restarts rooms", Picture: "https://x.example/p.png"}
	evs := identityTemplates(p, []string{"wss://a.example", "wss://b.example/", "wss://a.example"})
	if len(evs) != 3 || evs[0].Kind != 0 || evs[1].Kind != 10002 || evs[2].Kind != 10050 {
		t.Fatalf("kinds %v", evs)
	}
	var prof map[string]any
	if err := json.Unmarshal([]byte(evs[0].Content), &prof); err != nil {
		t.Fatal(err)
	}
	if prof["bot"] != true || prof["name"] != "nestbot" || prof["about"] != "Restarts rooms" || prof["picture"] != "https://x.example/p.png" {
		t.Fatalf("profile %v", prof)
	}
	wantR := nostr.Tags{{"r", "wss://a.example"}, {"r", "wss://b.example"}}
	wantDM := nostr.Tags{{"relay", "wss://a.example"}, {"relay", "wss://b.example"}}
	if !tagsEqual(evs[1].Tags, wantR) || !tagsEqual(evs[2].Tags, wantDM) {
		t.Fatalf("relay lists %v / %v", evs[1].Tags, evs[2].Tags)
	}
	// Same configuration, same bytes; no picture, no picture field.
	again := identityTemplates(p, []string{"wss://a.example", "wss://b.example"})
	if again[0].Content != evs[0].Content {
		t.Fatal("profile content is not deterministic")
	}
	bare := identityTemplates(config.Profile{Name: "n"}, []string{"wss://a.example"})
	if bare[0].Content != `{"name":"n","display_name":"n","bot":true}` {
		t.Fatalf("content %s", bare[0].Content)
	}
}

func TestIdentityPlan(t *testing.T) {
	relays := []string{"wss://a.example", "wss://b.example", "wss://c.example"}
	want := identityTemplates(config.Profile{Name: "n"}, relays)[1]
	same := want
	same.CreatedAt = 50
	stale := nostr.Event{Kind: 10002, CreatedAt: 90, Tags: nostr.Tags{{"r", "wss://a.example"}}}
	have := map[string]*nostr.Event{"wss://a.example": &same, "wss://b.example": &stale}
	lacking, newest := identityPlan(want, relays, have)
	if !slices.Equal(lacking, []string{"wss://b.example", "wss://c.example"}) || newest != &stale {
		t.Fatalf("lacking %v newest %v", lacking, newest)
	}
	all := map[string]*nostr.Event{"wss://a.example": &same, "wss://b.example": &same, "wss://c.example": &same}
	if lacking, _ := identityPlan(want, relays, all); len(lacking) != 0 {
		t.Fatalf("unchanged identity would be republished to %v", lacking)
	}
	other := same
	other.Content = "x"
	if sameIdentity(want, &other) || sameIdentity(want, nil) || !sameIdentity(want, &same) {
		t.Fatal("sameIdentity")
	}
	reordered := same
	reordered.Tags = nostr.Tags{want.Tags[2], want.Tags[1], want.Tags[0]}
	if sameIdentity(want, &reordered) {
		t.Fatal("a reordered relay list counts as the same")
	}
}

func tagsEqual(a, b nostr.Tags) bool {
	return slices.EqualFunc(a, b, func(x, y nostr.Tag) bool { return slices.Equal(x, y) })
}

// TestIdentityWebsite: the profile names the restart page only when one is
// configured, so a bot without one publishes the same bytes as before.
func TestIdentityWebsite(t *testing.T) {
	with := identityTemplates(config.Profile{Name: "n", Website: "https://console.example/"}, []string{"wss://a.example"})
	if with[0].Content != `{"name":"n","display_name":"n","website":"https://console.example/","bot":true}` {
		t.Fatalf("content %s", with[0].Content)
	}
	without := identityTemplates(config.Profile{Name: "n"}, []string{"wss://a.example"})
	if strings.Contains(without[0].Content, "website") {
		t.Fatalf("content %s", without[0].Content)
	}
}
