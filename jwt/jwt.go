// Package jwt authenticates courier connections with HS256 JSON Web Tokens
// (github.com/golang-jwt/jwt/v5): "sub" is the user id, "exp" is honoured,
// and an optional "rooms" claim lists the rooms the user may join.
package jwt

import (
	"context"
	"errors"
	"fmt"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/courier-im/courier"
)

// ErrInvalid is returned for a token that is malformed, badly signed,
// expired, or names no valid user.
var ErrInvalid = errors.New("invalid token")

// claims are the token's claims as courier reads them.
type claims struct {
	jwtlib.RegisteredClaims
	// Rooms is omitted only when nil: an empty list is a claim that
	// allows no room, while no claim allows any.
	Rooms []string `json:"rooms,omitzero"`
}

// Authenticator verifies HS256 tokens signed with its secret. It implements
// courier.Authenticator.
type Authenticator struct {
	secret []byte
	parser *jwtlib.Parser
}

// New returns an Authenticator for tokens signed with secret.
func New(secret []byte) *Authenticator {
	return &Authenticator{
		secret: secret,
		parser: jwtlib.NewParser(jwtlib.WithValidMethods([]string{"HS256"}), jwtlib.WithLeeway(5*time.Second)),
	}
}

// Authenticate returns the identity a valid token proves.
func (a *Authenticator) Authenticate(_ context.Context, token string) (courier.Identity, error) {
	var c claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwtlib.Token) (any, error) { return a.secret, nil })
	if err != nil {
		// The library's message is safe to show: it never includes the token.
		return courier.Identity{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !courier.ValidUser(c.Subject) {
		return courier.Identity{}, fmt.Errorf("%w: sub is not a valid user id", ErrInvalid)
	}
	id := courier.Identity{User: c.Subject, Rooms: c.Rooms}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// Mint returns a token for user signed with secret, valid for ttl. rooms,
// when not nil, becomes the rooms claim.
func Mint(secret []byte, user string, ttl time.Duration, rooms []string) (string, error) {
	if !courier.ValidUser(user) {
		return "", fmt.Errorf("mint token: invalid user id %q", user)
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwtlib.RegisteredClaims{
			Subject:   user,
			IssuedAt:  jwtlib.NewNumericDate(now),
			ExpiresAt: jwtlib.NewNumericDate(now.Add(ttl)),
		},
		Rooms: rooms,
	}
	s, err := jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token for %s: %w", user, err)
	}
	return s, nil
}
