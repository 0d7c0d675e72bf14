// Package protocol is courier's wire format on a WebSocket: it decodes the
// frames clients send and encodes the frames the server sends, as JSON text
// messages (docs/protocol.md is the reference).
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Error codes of error frames.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeTooLarge     = "too_large"
	CodeRateLimited  = "rate_limited"
	CodeInternal     = "internal"
)

// Client frame types.
const (
	TypeSend          = "send"
	TypeJoin          = "join"
	TypeLeave         = "leave"
	TypePublish       = "publish"
	TypeResume        = "resume"
	TypeHistory       = "history"
	TypeSearch        = "search"
	TypePresence      = "presence"
	TypeWatch         = "watch"
	TypeUnwatch       = "unwatch"
	TypeRead          = "read"
	TypeConversations = "conversations"
	TypePing          = "ping"
)

// A Frame is a decoded client frame. Which fields matter depends on Type.
type Frame struct {
	Type     string          `json:"type"`
	To       string          `json:"to"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	Volatile bool            `json:"volatile"`
	Key      string          `json:"key"`
	Room     string          `json:"room"`
	Since    *uint64         `json:"since"`
	With     string          `json:"with"`
	Q        string          `json:"q"`
	Limit    int             `json:"limit"`
	Before   uint64          `json:"before"`
	Users    []string        `json:"users"`
	Seq      *uint64         `json:"seq"`

	// ID is the frame's id when the client gave it as a string (an id of
	// another JSON type is accepted and ignored); replies echo it.
	ID string `json:"-"`
}

// An Error is a protocol error, sent to the client as an error frame.
type Error struct {
	ID      string // the offending frame's id, when known
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(id, code, format string, args ...any) *Error {
	return &Error{ID: id, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Decode parses one client frame. A frame that is not a JSON object, lacks
// its type or a field its type needs, or has a field of the wrong type
// gets an *Error carrying the frame's id when that was a string, and no
// frame.
func Decode(b []byte) (*Frame, error) {
	f := new(Frame)
	if err := DecodeInto(b, f); err != nil {
		return nil, err
	}
	return f, nil
}

// DecodeInto is Decode into f, which must be zero: a server decoding a
// frame per message keeps f on its stack. On error f is left partly set.
func DecodeInto(b []byte, f *Frame) error {
	if firstByte(b) != '{' {
		return Errorf("", CodeBadRequest, "a frame is one JSON object")
	}
	sc := frameScanner{b: b}
	err := sc.decodeFrame(f)
	if err != nil {
		if f.ID == "" {
			f.ID = salvageID(b)
		}
		return Errorf(f.ID, CodeBadRequest, "malformed JSON")
	}
	if sc.typeErr != "" {
		return Errorf(f.ID, CodeBadRequest, "field %q has the wrong type", sc.typeErr)
	}
	if len(f.Data) == 0 {
		f.Data = nil
	}
	return f.check()
}

// salvageID returns the string id of a malformed frame when it stands as a
// top-level "id" member before the point where the JSON breaks, so that the
// error can still be matched to its request.
func salvageID(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		if key == "id" {
			if v, err := dec.Token(); err == nil {
				if id, ok := v.(string); ok {
					return id
				}
			}
			return ""
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

// firstByte returns the first byte of b that is not JSON whitespace, or 0.
// (bytes.TrimSpace would also drop Unicode spaces, which JSON rejects.)
func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// check reports a missing field that the frame's type needs.
func (f *Frame) check() error {
	need := func(ok bool, field string) error {
		if ok {
			return nil
		}
		return Errorf(f.ID, CodeBadRequest, "%s needs %q", f.Type, field)
	}
	switch f.Type {
	case "":
		return Errorf(f.ID, CodeBadRequest, "missing type")
	case TypeSend:
		return need(f.To != "", "to")
	case TypeJoin, TypeLeave, TypePublish:
		return need(f.Room != "", "room")
	case TypeResume:
		return need(f.Since != nil, "since")
	case TypeHistory:
		return need(f.With != "" || f.Room != "", "with")
	case TypeSearch:
		return need(f.Q != "", "q")
	case TypePresence, TypeWatch, TypeUnwatch:
		return need(len(f.Users) > 0, "users")
	case TypeRead:
		if err := need(f.With != "", "with"); err != nil {
			return err
		}
		return need(f.Seq != nil, "seq")
	case TypeConversations, TypePing:
		return nil
	}
	return Errorf(f.ID, CodeBadRequest, "unknown type %q", truncate(f.Type, 64))
}

// truncate shortens s to at most n bytes, cutting at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
