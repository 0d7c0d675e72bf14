package server_test

import (
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
)

// mintExpired returns a token for alice that expired an hour ago.
func mintExpired() (string, error) {
	c := jwtlib.RegisteredClaims{Subject: "alice", ExpiresAt: jwtlib.NewNumericDate(time.Now().Add(-time.Hour))}
	return jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, c).SignedString([]byte(testSecret))
}
