// Package courier delivers messages to specific users over WebSocket: to every
// connection a user has open, on whichever node holds it, durably.
//
// The root package holds the domain: messages and addresses, the Hub that
// routes them, and the interfaces its dependencies satisfy — Store (sqlite,
// postgres), Broker (between nodes) and Authenticator (jwt). Transports such
// as the WebSocket server in package server attach connections to a Hub.
package courier

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors a Hub returns; transports map them to protocol error codes.
var (
	ErrBadRequest = errors.New("bad request")
	ErrForbidden  = errors.New("forbidden")
	ErrNotFound   = errors.New("not found")
	ErrTooLarge   = errors.New("too large")
	ErrRateLimit  = errors.New("rate limited")
	ErrClosed     = errors.New("hub closed")
)

// ConnPrefix marks an address naming one connection rather than a user.
const ConnPrefix = "conn:"

// MaxUserLen is the longest user id, in bytes.
const MaxUserLen = 128

// ValidUser reports whether id is a valid user id: 1 to 128 bytes of UTF-8
// with no control characters.
func ValidUser(id string) bool {
	if len(id) == 0 || len(id) > MaxUserLen || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// ValidRoom reports whether name is a usable room name; rooms follow the
// rules of user ids.
func ValidRoom(name string) bool { return ValidUser(name) }

// ConnTarget returns the connection id named by to and true when to is a
// "conn:<id>" address.
func ConnTarget(to string) (string, bool) {
	if strings.HasPrefix(to, ConnPrefix) {
		return to[len(ConnPrefix):], true
	}
	return "", false
}

// A Message is what courier delivers. Seq is its place in the inbox (or room)
// it is read from, and so differs between the recipient's copy and the
// sender's.
type Message struct {
	ID    string          // unique id, assigned by the hub
	From  string          // authenticated sender, or a label given by the server API
	To    string          // recipient user, or "conn:<id>"; empty for a room message
	Room  string          // room name for a room message
	Event string          // application event name, "message" when not given
	Data  json.RawMessage // application payload; JSON null when not given
	Time  time.Time       // when the hub accepted it, UTC, millisecond precision
	Seq   uint64          // inbox or room seq; 0 for a volatile message
	// Status is, in a conversation's history and in its last message, how
	// far a direct message the reader sent has got: StatusSent,
	// StatusDelivered or StatusRead. Zero elsewhere: live and replayed
	// messages are sent as they were stored; receipts follow as notices.
	Status Status
}

// Status is how far a direct message has got towards its recipient, as
// its sender's history reports it. A later status implies the earlier ones.
type Status uint8

const (
	StatusSent      Status = 1 + iota // stored; it has reached no connection of the recipient yet
	StatusDelivered                   // it reached a connection of the recipient
	StatusRead                        // the recipient's read mark passed it
)

// String returns "sent", "delivered" or "read", the words of the protocol,
// and "" for zero.
func (s Status) String() string {
	switch s {
	case StatusSent:
		return "sent"
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	return ""
}

// An Envelope is a durable message on its way into the Store: the message with
// the places the store assigns it in the recipient's and sender's inboxes.
type Envelope struct {
	Message
	// Key is the sender-scoped idempotency key; empty for none.
	Key string
	// NoSenderCopy is set when From is a label (server API) rather than a
	// user: the message goes into no sender inbox.
	NoSenderCopy bool
	// ToSeq is the seq in the recipient's inbox, or the room seq for a room
	// message; set by the store.
	ToSeq uint64
	// FromSeq is the seq in the sender's inbox; set by the store unless
	// NoSenderCopy or a room message.
	FromSeq uint64
	// Duplicate is set by the store when Key was used before by this sender:
	// ID, Time and the seqs then describe the first message, and nothing new
	// was stored.
	Duplicate bool
}

// Now returns the current time as courier timestamps it: UTC, truncated to
// milliseconds so that what is stored and what is sent agree.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Check reports, as ErrBadRequest, an envelope no store can hold
// meaningfully: no id, not exactly one of To and Room, a direct message
// without a sender that is not NoSenderCopy, or data that is not JSON.
// Stores call it on what they are given; a Hub only builds valid ones.
func (e *Envelope) Check() error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: nil envelope", ErrBadRequest)
	case e.ID == "":
		return fmt.Errorf("%w: empty message id", ErrBadRequest)
	case (e.To == "") == (e.Room == ""):
		return fmt.Errorf("%w: message %s: want exactly one of To and Room", ErrBadRequest, e.ID)
	case e.Room == "" && !e.NoSenderCopy && e.From == "":
		return fmt.Errorf("%w: message %s: empty From needs NoSenderCopy", ErrBadRequest, e.ID)
	case len(e.Data) > 0 && !json.Valid(e.Data):
		return fmt.Errorf("%w: message %s: data is not JSON", ErrBadRequest, e.ID)
	}
	return nil
}
