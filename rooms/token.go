package rooms

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/nestbot/nestbot/nostrx"
)

// Tokens mints LiveKit access tokens in the shape the Nests API server
// mints them, so Nests clients read identity, name and metadata as usual.
type Tokens struct {
	APIKey    string
	APISecret string
	TTL       time.Duration
}

// Mint issues a token for pubkey in room with the powers of role. The bot
// only ever answers hosts and admins, who get every grant a host has.
func (t Tokens) Mint(room, pubkey string, role nostrx.Role) (string, error) {
	meta, err := json.Marshal(map[string]string{"role": strings.ToLower(role.String()), "pubkey": pubkey})
	if err != nil {
		return "", err
	}
	grant := &auth.VideoGrant{Room: room, RoomJoin: true}
	grant.SetCanSubscribe(true)
	grant.SetCanPublish(role >= nostrx.RoleSpeaker)
	if role >= nostrx.RoleAdmin {
		grant.RoomAdmin = true
		grant.RoomRecord = true
	}
	jwt, err := auth.NewAccessToken(t.APIKey, t.APISecret).
		SetIdentity(pubkey).
		SetName(role.String()).
		SetMetadata(string(meta)).
		SetVideoGrant(grant).
		SetValidFor(t.TTL).
		ToJWT()
	if err != nil {
		return "", fmt.Errorf("mint token for room %s: %w", room, err)
	}
	return jwt, nil
}
