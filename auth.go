package courier

import (
	"context"
	"time"
)

// An Identity is who a connection or request is, as proven by its token.
type Identity struct {
	User    string    // the user id (JWT "sub")
	Rooms   []string  // rooms the user may join, names or "prefix*"; nil means any
	Expires time.Time // when the token stops being valid; zero for never
}

// An Authenticator turns a bearer token into an Identity.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// MayJoin reports whether the identity's rooms claim allows room: any room
// when the claim is absent, else a listed name or a "prefix*" pattern.
func (id Identity) MayJoin(room string) bool {
	if id.Rooms == nil {
		return true
	}
	for _, p := range id.Rooms {
		if p == room || (len(p) > 0 && p[len(p)-1] == '*' && len(room) >= len(p)-1 && room[:len(p)-1] == p[:len(p)-1]) {
			return true
		}
	}
	return false
}
