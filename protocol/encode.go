package protocol

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/courier-im/courier"
)

// TimeFormat is how frames write times: RFC 3339 in UTC with exactly three
// fractional digits.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// AppendMessage appends m as a message frame.
func AppendMessage(b []byte, m *courier.Message) []byte {
	b = append(b, `{"type":"message","msg":`...)
	b = AppendString(b, m.ID)
	b = append(b, `,"from":`...)
	b = AppendString(b, m.From)
	if m.To != "" {
		b = append(b, `,"to":`...)
		b = AppendString(b, m.To)
	}
	if m.Room != "" {
		b = append(b, `,"room":`...)
		b = AppendString(b, m.Room)
	}
	b = append(b, `,"event":`...)
	b = AppendString(b, m.Event)
	b = append(b, `,"data":`...)
	if len(m.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Data...)
	}
	b = append(b, `,"ts":"`...)
	b = appendTimestamp(b, m.Time)
	b = append(b, '"')
	if m.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	if m.Status != 0 {
		b = append(b, `,"status":"`...)
		b = append(b, m.Status.String()...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// AppendWelcome appends the first frame of a connection; seq, the inbox
// head at attach, only when hasSeq.
func AppendWelcome(b []byte, user, conn string, seq uint64, hasSeq bool) []byte {
	b = append(b, `{"type":"welcome","user":`...)
	b = AppendString(b, user)
	b = append(b, `,"conn":`...)
	b = AppendString(b, conn)
	if hasSeq {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
	}
	return append(b, '}')
}

// An Ack is the reply to a frame that succeeded.
type Ack struct {
	ID     string
	Msg    string // message id, for send and publish
	Seq    uint64
	HasSeq bool // write seq even when 0 (resume of an empty inbox)
}

// AppendAck appends a as an ack frame.
func AppendAck(b []byte, a Ack) []byte {
	b = append(b, `{"type":"ack"`...)
	if a.ID != "" {
		b = append(b, `,"id":`...)
		b = AppendString(b, a.ID)
	}
	if a.Msg != "" {
		b = append(b, `,"msg":`...)
		b = AppendString(b, a.Msg)
	}
	if a.HasSeq || a.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.Seq, 10)
	}
	return append(b, '}')
}

// AppendError appends e as an error frame.
func AppendError(b []byte, e *Error) []byte {
	b = append(b, `{"type":"error"`...)
	if e.ID != "" {
		b = append(b, `,"id":`...)
		b = AppendString(b, e.ID)
	}
	b = append(b, `,"code":`...)
	b = AppendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	return append(b, '}')
}

// AppendTime appends t in TimeFormat, quoted.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = appendTimestamp(b, t)
	return append(b, '"')
}

// appendTimestamp appends t in TimeFormat, digit by digit: every message
// frame has one, and time's general formatter took 14% of the server's CPU
// at 20,000 msg/s, much of it growing the stacks of nbio's fresh handler
// goroutines to fit its frame (docs/benchmarks.md).
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	hour, minute, sec := t.Clock()
	n := len(b)
	b = append(b, "0000-00-00T00:00:00.000Z"...)
	d := b[n : n+24]
	put2 := func(i, v int) { d[i], d[i+1] = byte('0'+v/10), byte('0'+v%10) }
	put2(0, year/100)
	put2(2, year%100)
	put2(5, int(month))
	put2(8, day)
	put2(11, hour)
	put2(14, minute)
	put2(17, sec)
	ms := t.Nanosecond() / 1e6
	d[20], d[21], d[22] = byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10)
	return b
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
