// Package load is courier's load generator: scenarios (idle, dm, room,
// reconnect) run against a server through a Driver, so the same scenario
// measures courier and its peers (Socket.IO) side by side.
package load

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"
)

// A Driver speaks one server's protocol.
type Driver interface {
	// Name is the target's name in reports ("courier", "socketio").
	Name() string
	// Dial connects user; with since > 0 (courier only) the server first
	// replays user's stored messages after that seq. h's callbacks run on
	// the connection's reader and must not block.
	Dial(ctx context.Context, user string, since uint64, h Handler) (Client, error)
}

// Handler receives what a Client's server sends.
type Handler struct {
	// Message is called with the payload of each message delivered to the
	// user (direct or room), exactly as the sender passed it, and its inbox
	// seq (0 when volatile or the server has none). payload may point into
	// the driver's read buffer: it is valid only during the call.
	Message func(payload []byte, seq uint64)
	// Ack is called when the server acknowledges one of this client's
	// sends or publishes (in order); ok is false for an error reply; seq is
	// the sent message's inbox seq (courier durable sends).
	Ack func(ok bool, seq uint64)
	// Closed is called once when the connection ends.
	Closed func(err error)
}

// A Client is one simulated user's connection.
type Client interface {
	// Send sends payload to user to. durable asks for a stored message
	// where the server distinguishes (courier); peers without storage
	// ignore it. It returns once the frame is written, not when acked.
	Send(to string, payload []byte, durable bool) error
	// Join joins room and returns once the server confirms.
	Join(ctx context.Context, room string) error
	// Publish sends payload to every other member of room.
	Publish(room string, payload []byte, durable bool) error
	// Close closes the connection.
	Close() error
}

// A WireReporter is a Driver that can say what its connections
// negotiated and how many bytes they carried.
type WireReporter interface {
	Wire() Wire
}

// Wire is what a driver's connections negotiated and carried so far.
type Wire struct {
	Encoding string // "json" or "msgpack"; empty for non-courier targets
	Compress bool   // permessage-deflate
	// InBytes and OutBytes are the WebSocket bytes read and written
	// since the driver started, after the handshakes (no TCP/IP headers).
	InBytes, OutBytes int64
	// ConnsPerURL counts the connections made to each node, when the
	// driver spreads them over several.
	ConnsPerURL map[string]int64
}

// Fills of a payload after its time stamp (Config.Fill).
const (
	FillX      = "x"      // "xxxx…": compresses to almost nothing
	FillText   = "text"   // words of English, which deflate shrinks about as it does chat text
	FillRandom = "random" // random letters and digits: deflate saves only its Huffman coding
)

// Stamp returns an ASCII payload of size bytes (at least 20: 19 digits of
// Unix nanoseconds and a dot, then padding of x) carrying the current time,
// for latency measurement on the receiving side. Drivers carry it as a JSON
// string, so it holds no character that JSON would escape.
func Stamp(size int) []byte { return StampFill(size, FillX) }

// StampFill is Stamp with the padding fill (FillX, FillText or FillRandom;
// anything else is FillX).
func StampFill(size int, fill string) []byte {
	size = max(size, 20)
	b := make([]byte, size)
	putStamp(b)
	b[19] = '.'
	switch fill {
	case FillText:
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		i := 20
		for i < size {
			w := textWords[rng.IntN(len(textWords))]
			i += copy(b[i:], w)
			if i < size {
				b[i] = ' '
				i++
			}
		}
	case FillRandom:
		const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		for i := 20; i < size; i++ {
			b[i] = alnum[rand.IntN(len(alnum))]
		}
	default:
		for i := 20; i < size; i++ {
			b[i] = 'x'
		}
	}
	return b
}

// textWords are the words of FillText: common English words, each as
// likely as the others.
var textWords = strings.Fields(`the of and to a in is it you that he was for on are with as I his they
be at one have this from or had by hot word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no most people
my over know water than call first who may down side been now find any new work part take get place
made live where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before move right
boy old too same tell does set three want air well also play small end put home read hand port large
spell add even land here must big high such follow act why ask men change went light kind off need
house picture try us again animal point mother world near build self earth father`)

// Stamped returns the time a Stamp payload carries, and false if p is not
// one.
func Stamped(p []byte) (time.Time, bool) {
	if len(p) < 20 || p[19] != '.' {
		return time.Time{}, false
	}
	var n int64
	for _, c := range p[:19] {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		n = n*10 + int64(c-'0')
	}
	return time.Unix(0, n), true
}
