package jwt_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/courier-im/courier/jwt"
)

var secret = []byte("s3cret")

func b64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign builds a compact JWS by hand, so that tests can make tokens the
// library would refuse to make.
func sign(header, claims map[string]any, key []byte, h func() hash.Hash) string {
	s := b64(header) + "." + b64(claims)
	if h == nil {
		return s + "."
	}
	m := hmac.New(h, key)
	m.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func hs256(claims map[string]any) string {
	return sign(map[string]any{"alg": "HS256", "typ": "JWT"}, claims, secret, sha256.New)
}

func auth(tok string) (id any, err error) {
	return jwt.New(secret).Authenticate(context.Background(), tok)
}

func TestAuthenticateValid(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	id, err := jwt.New(secret).Authenticate(context.Background(), hs256(map[string]any{
		"sub": "alice", "exp": exp.Unix(), "iat": time.Now().Unix(), "rooms": []string{"lobby", "team-*"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "alice" || !reflect.DeepEqual(id.Rooms, []string{"lobby", "team-*"}) || !id.Expires.Equal(exp) {
		t.Errorf("identity = %+v, want alice, [lobby team-*], expires %v", id, exp)
	}
}

func TestAuthenticateRoomsClaim(t *testing.T) {
	a := jwt.New(secret)
	exp := time.Now().Add(time.Hour).Unix()
	id, err := a.Authenticate(context.Background(), hs256(map[string]any{"sub": "alice", "exp": exp}))
	if err != nil || id.Rooms != nil {
		t.Errorf("no rooms claim: %+v, %v; want nil rooms (any room)", id, err)
	}
	id, err = a.Authenticate(context.Background(), hs256(map[string]any{"sub": "alice", "exp": exp, "rooms": []string{}}))
	if err != nil || id.Rooms == nil || len(id.Rooms) != 0 {
		t.Errorf("empty rooms claim: %+v, %v; want an empty, non-nil list (no room)", id, err)
	}
	for _, bad := range []any{"lobby", 5, []any{"lobby", 5}, map[string]any{"lobby": true}} {
		if id, err := a.Authenticate(context.Background(), hs256(map[string]any{"sub": "alice", "exp": exp, "rooms": bad})); err == nil {
			t.Errorf("rooms claim %v accepted: %+v", bad, id)
		}
	}
}

func TestAuthenticateWithoutExp(t *testing.T) {
	id, err := jwt.New(secret).Authenticate(context.Background(), hs256(map[string]any{"sub": "bob"}))
	if err != nil {
		t.Fatalf("token without exp: %v", err)
	}
	if id.User != "bob" || !id.Expires.IsZero() {
		t.Errorf("identity = %+v, want bob with zero Expires", id)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	now := time.Now()
	valid := map[string]any{"sub": "alice", "exp": now.Add(time.Hour).Unix()}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range valid {
			c[k] = v
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	good := hs256(valid)
	parts := strings.Split(good, ".")
	tests := []struct {
		name, tok string
	}{
		{"empty", ""},
		{"garbage", "not-a-token"},
		{"two parts", parts[0] + "." + parts[1]},
		{"four parts", good + ".x"},
		{"no signature", parts[0] + "." + parts[1] + "."},
		{"bad signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", 43)},
		{"tampered claims", parts[0] + "." + b64(with("sub", "admin")) + "." + parts[2]},
		{"bad base64", parts[0] + ".!!!." + parts[2]},
		{"wrong secret", sign(map[string]any{"alg": "HS256", "typ": "JWT"}, valid, []byte("other"), sha256.New)},
		{"empty secret", sign(map[string]any{"alg": "HS256", "typ": "JWT"}, valid, nil, sha256.New)},
		{"expired", hs256(with("exp", now.Add(-time.Minute).Unix()))},
		{"long expired", hs256(with("exp", 1))},
		{"exp not a number", hs256(with("exp", "tomorrow"))},
		{"not yet valid", hs256(with("nbf", now.Add(time.Hour).Unix()))},
		{"alg none", sign(map[string]any{"alg": "none", "typ": "JWT"}, valid, nil, nil)},
		{"alg None", sign(map[string]any{"alg": "None", "typ": "JWT"}, valid, nil, nil)},
		{"alg none with HMAC", sign(map[string]any{"alg": "none", "typ": "JWT"}, valid, secret, sha256.New)},
		{"alg missing", sign(map[string]any{"typ": "JWT"}, valid, secret, sha256.New)},
		// Algorithm confusion: an RS256 header over an HMAC made with the secret.
		{"RS256 header", sign(map[string]any{"alg": "RS256", "typ": "JWT"}, valid, secret, sha256.New)},
		{"ES256 header", sign(map[string]any{"alg": "ES256", "typ": "JWT"}, valid, secret, sha256.New)},
		{"HS384", sign(map[string]any{"alg": "HS384", "typ": "JWT"}, valid, secret, sha512.New384)},
		{"HS512", sign(map[string]any{"alg": "HS512", "typ": "JWT"}, valid, secret, sha512.New)},
		{"hs256 lowercase", sign(map[string]any{"alg": "hs256", "typ": "JWT"}, valid, secret, sha256.New)},
		{"sub missing", hs256(with("sub", nil))},
		{"sub empty", hs256(with("sub", ""))},
		{"sub not a string", hs256(with("sub", 42))},
		{"sub too long", hs256(with("sub", strings.Repeat("a", 129)))},
		{"sub too long in bytes", hs256(with("sub", strings.Repeat("é", 65)))},
		{"sub with NUL", hs256(with("sub", "ali\x00ce"))},
		{"sub with newline", hs256(with("sub", "alice\n"))},
		{"sub with tab", hs256(with("sub", "\talice"))},
		{"sub with DEL", hs256(with("sub", "alice\x7f"))},
		{"sub with C1 control", hs256(with("sub", "alice\u0085"))},
		{"claims not an object", sign(map[string]any{"alg": "HS256"}, nil, secret, sha256.New)},
	}
	a := jwt.New(secret)
	for _, tt := range tests {
		id, err := a.Authenticate(context.Background(), tt.tok)
		if err == nil {
			t.Errorf("%s: accepted as %+v", tt.name, id)
			continue
		}
		if !errors.Is(err, jwt.ErrInvalid) {
			t.Errorf("%s: error %v is not ErrInvalid", tt.name, err)
		}
		if tt.tok != "" && len(tt.tok) > 20 && strings.Contains(err.Error(), tt.tok) {
			t.Errorf("%s: error repeats the token", tt.name)
		}
	}
}

func TestAuthenticateSubLimits(t *testing.T) {
	a := jwt.New(secret)
	for _, sub := range []string{"a", strings.Repeat("a", 128), strings.Repeat("é", 64), "日本", "alice@example.com", "user with spaces", "😀"} {
		id, err := a.Authenticate(context.Background(), hs256(map[string]any{"sub": sub}))
		if err != nil || id.User != sub {
			t.Errorf("sub %q (%d bytes): %+v, %v", sub, len(sub), id, err)
		}
	}
}

// TestAuthenticateOtherSecret: an Authenticator only accepts its own
// secret's tokens.
func TestAuthenticateOtherSecret(t *testing.T) {
	tok, err := jwt.Mint([]byte("one"), "alice", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.New([]byte("two")).Authenticate(context.Background(), tok); !errors.Is(err, jwt.ErrInvalid) {
		t.Errorf("token of another secret: %v", err)
	}
	if _, err := jwt.New([]byte("one")).Authenticate(context.Background(), tok); err != nil {
		t.Errorf("token of its own secret: %v", err)
	}
}

func TestMintRoundTrip(t *testing.T) {
	a := jwt.New(secret)
	for _, rooms := range [][]string{nil, {}, {"lobby"}, {"lobby", "team-*", "日本"}} {
		before := time.Now()
		tok, err := jwt.Mint(secret, "alice", 90*time.Minute, rooms)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("Mint = %q is not a compact JWS", tok)
		}
		id, err := a.Authenticate(context.Background(), tok)
		if err != nil {
			t.Fatalf("Authenticate(Mint(rooms=%#v)): %v", rooms, err)
		}
		if id.User != "alice" {
			t.Errorf("User = %q", id.User)
		}
		if (rooms == nil) != (id.Rooms == nil) || len(rooms) != len(id.Rooms) || (len(rooms) > 0 && !reflect.DeepEqual(rooms, id.Rooms)) {
			t.Errorf("Mint(rooms=%#v) authenticates with rooms %#v", rooms, id.Rooms)
		}
		want := before.Add(90 * time.Minute)
		if d := id.Expires.Sub(want); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("Expires = %v, want about %v", id.Expires, want)
		}
		// The header says HS256 and JWT.
		h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		var header map[string]any
		if err := json.Unmarshal(h, &header); err != nil || header["alg"] != "HS256" {
			t.Errorf("header = %s", h)
		}
	}
}

func TestMintExpired(t *testing.T) {
	tok, err := jwt.Mint(secret, "alice", -time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth(tok); !errors.Is(err, jwt.ErrInvalid) {
		t.Errorf("token minted expired: %v", err)
	}
}

func TestMintInvalidUser(t *testing.T) {
	for _, user := range []string{"", strings.Repeat("x", 129), "a\nb", "\x00", "\xff"} {
		if tok, err := jwt.Mint(secret, user, time.Hour, nil); err == nil {
			t.Errorf("Mint(%q) = %q, want an error", user, tok)
		}
	}
}
