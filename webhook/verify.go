package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureHeader is the request header that carries the signature of the
// body.
const SignatureHeader = "X-Courier-Signature"

// Sign returns the value of SignatureHeader for body:
// "sha256=" and the hex HMAC-SHA256 of body keyed with secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header, the value of SignatureHeader, is the
// signature of body with secret. It compares in constant time, and is false
// for an empty secret or a malformed header. body must be the exact bytes
// received, before any decoding.
func Verify(secret string, body []byte, header string) bool {
	h, ok := strings.CutPrefix(header, "sha256=")
	if !ok || secret == "" {
		return false
	}
	got, err := hex.DecodeString(h)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}
