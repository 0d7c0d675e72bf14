package protocol

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// Direct converters for the frames courier actually exchanges. The general
// converters (msgpack.go) go through interface values, a map per object
// and a reflection-driven encoder: about 5 µs and dozens of allocations
// per frame, which made a MessagePack connection cost three times the CPU
// of a JSON one. These walk the input once and append the output; they
// decline (ok == false) anything whose conversion is not plain — escaped
// or invalid strings, floats on the way to JSON, binaries, extensions,
// duplicate keys, deep nesting, trailing bytes — and the general converter
// then decides, so that both produce the same value (the differential
// fuzz tests in msgpack_fast_test.go hold them to it).

// fastDepth bounds the nesting the direct converters take on.
const fastDepth = 16

// fastKeys bounds the keys of one object the direct converters take on.
const fastKeys = 32

// appendJSONAsMsgpack appends the MessagePack form of the JSON value b, as
// JSONToMsgpack makes it except that object keys keep their JSON order.
func appendJSONAsMsgpack(dst, b []byte) ([]byte, bool) {
	i := jsonWS(b, 0)
	dst, i, ok := jsonValueToMsgpack(dst, b, i, 0)
	if !ok || jsonWS(b, i) != len(b) {
		return nil, false
	}
	return dst, true
}

func jsonWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonPlainString returns the end (the closing quote) of the JSON string
// opening at b[i] when its bytes are its value: no escapes, no control
// characters, valid UTF-8.
func jsonPlainString(b []byte, i int) (int, bool) {
	start := i + 1
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j, utf8.Valid(b[start:j])
		case c == '\\' || c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

func jsonValueToMsgpack(dst, b []byte, i, depth int) ([]byte, int, bool) {
	if i >= len(b) || depth > fastDepth {
		return nil, 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, ok := jsonPlainString(b, i)
		if !ok {
			return nil, 0, false
		}
		return appendMsgpackStr(dst, b[i+1:end]), end + 1, true
	case c == '{' || c == '[':
		return jsonContainerToMsgpack(dst, b, i, depth)
	case c == 't' && bytes.HasPrefix(b[i:], []byte("true")):
		return append(dst, 0xc3), i + 4, true
	case c == 'f' && bytes.HasPrefix(b[i:], []byte("false")):
		return append(dst, 0xc2), i + 5, true
	case c == 'n' && bytes.HasPrefix(b[i:], []byte("null")):
		return append(dst, 0xc0), i + 4, true
	case c == '-' || c >= '0' && c <= '9':
		end, integer, ok := jsonNumber(b, i)
		if !ok {
			return nil, 0, false
		}
		s := string(b[i:end]) // does not escape: no allocation
		if integer {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, 0, false // past int64: the general path decides
			}
			return appendMsgpackInt(dst, n), end, true
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, 0, false
		}
		return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(f)), end, true
	}
	return nil, 0, false
}

// jsonNumber returns the end of the JSON number at b[i] and whether it is
// an integer (no fraction, no exponent); ok is false when it does not
// follow JSON's grammar.
func jsonNumber(b []byte, i int) (end int, integer, ok bool) {
	digits := func() int {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - s
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false, false
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false, false
		}
		integer = false
	}
	return i, integer, true
}

// msgpackContainer fixes up the header of a map or array whose n entries
// were appended after a one-byte placeholder at dst[h]: fix (n < 16), 16-
// or 32-bit as the general encoder writes it.
func msgpackContainer(dst []byte, h, n int, fix, c16, c32 byte) []byte {
	if n < 16 {
		dst[h] = fix | byte(n)
		return dst
	}
	extra := 2
	if n > math.MaxUint16 {
		extra = 4
	}
	dst = append(dst, make([]byte, extra)...)
	copy(dst[h+1+extra:], dst[h+1:len(dst)-extra])
	if extra == 2 {
		dst[h] = c16
		binary.BigEndian.PutUint16(dst[h+1:], uint16(n))
	} else {
		dst[h] = c32
		binary.BigEndian.PutUint32(dst[h+1:], uint32(n))
	}
	return dst
}

// jsonContainerToMsgpack converts the object or array opening at b[i].
func jsonContainerToMsgpack(dst, b []byte, i, depth int) ([]byte, int, bool) {
	obj := b[i] == '{'
	closer, fix, c16, c32 := byte(']'), byte(0x90), byte(0xdc), byte(0xdd)
	if obj {
		closer, fix, c16, c32 = '}', 0x80, 0xde, 0xdf
	}
	h := len(dst)
	dst = append(dst, 0)
	var keys [fastKeys][]byte
	n := 0
	i = jsonWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return msgpackContainer(dst, h, 0, fix, c16, c32), i + 1, true
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' || n == fastKeys {
				return nil, 0, false
			}
			end, ok := jsonPlainString(b, i)
			if !ok {
				return nil, 0, false
			}
			key := b[i+1 : end]
			for _, k := range keys[:n] {
				if bytes.Equal(k, key) {
					return nil, 0, false // the last would win: the general path
				}
			}
			keys[n] = key
			dst = appendMsgpackStr(dst, key)
			i = jsonWS(b, end+1)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, false
			}
			i = jsonWS(b, i+1)
		}
		var ok bool
		if dst, i, ok = jsonValueToMsgpack(dst, b, i, depth+1); !ok {
			return nil, 0, false
		}
		n++
		i = jsonWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = jsonWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == closer {
			return msgpackContainer(dst, h, n, fix, c16, c32), i + 1, true
		}
		return nil, 0, false
	}
}

// appendMsgpackStr appends s as the general encoder does: fixstr, str8,
// str16 or str32.
func appendMsgpackStr(dst, s []byte) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n < 256:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// appendMsgpackInt appends n in the smallest form, as the general encoder
// does: unsigned codes for n >= 0, signed ones below.
func appendMsgpackInt(dst []byte, n int64) []byte {
	if n >= 0 {
		switch u := uint64(n); {
		case u <= math.MaxInt8:
			return append(dst, byte(u))
		case u <= math.MaxUint8:
			return append(dst, 0xcc, byte(u))
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(u))
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(u))
		default:
			return binary.BigEndian.AppendUint64(append(dst, 0xcf), u)
		}
	}
	switch {
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
	}
}

// appendMsgpackAsJSON appends the JSON form of the MessagePack value b
// exactly as MsgpackToJSON writes it (object keys sorted, as
// encoding/json sorts a map's).
func appendMsgpackAsJSON(dst, b []byte) ([]byte, bool) {
	dst, end, ok := msgpackValueToJSON(dst, b, 0, 0)
	if !ok || end != len(b) {
		return nil, false
	}
	return dst, true
}

// msgpackStrAt returns the str at b[i:] and where it ends.
func msgpackStrAt(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) {
		return nil, 0, false
	}
	var n, s int
	switch c := b[i]; {
	case c >= 0xa0 && c <= 0xbf:
		n, s = int(c&0x1f), i+1
	case c == 0xd9 && i+2 <= len(b):
		n, s = int(b[i+1]), i+2
	case c == 0xda && i+3 <= len(b):
		n, s = int(binary.BigEndian.Uint16(b[i+1:])), i+3
	case c == 0xdb && i+5 <= len(b):
		n, s = int(binary.BigEndian.Uint32(b[i+1:])), i+5
	default:
		return nil, 0, false
	}
	if n > len(b)-s {
		return nil, 0, false
	}
	return b[s : s+n], s + n, true
}

// msgpackCount reads a map's or an array's header at b[i:].
func msgpackCount(b []byte, i int) (n, start int, isMap, ok bool) {
	switch c := b[i]; {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), i + 1, true, true
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), i + 1, false, true
	case (c == 0xde || c == 0xdc) && i+3 <= len(b):
		return int(binary.BigEndian.Uint16(b[i+1:])), i + 3, c == 0xde, true
	case (c == 0xdf || c == 0xdd) && i+5 <= len(b):
		return int(binary.BigEndian.Uint32(b[i+1:])), i + 5, c == 0xdf, true
	}
	return 0, 0, false, false
}

// jsonSafe reports whether encoding/json writes s as it is (between
// quotes): no byte it escapes (controls, quote, backslash, and <, >, &
// for HTML), valid UTF-8 without U+2028 and U+2029.
func jsonSafe(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

func msgpackValueToJSON(dst, b []byte, i, depth int) ([]byte, int, bool) {
	if i >= len(b) || depth > fastDepth {
		return nil, 0, false
	}
	c := b[i]
	switch {
	case c <= 0x7f:
		return strconv.AppendInt(dst, int64(c), 10), i + 1, true
	case c >= 0xe0:
		return strconv.AppendInt(dst, int64(int8(c)), 10), i + 1, true
	case c == 0xc0:
		return append(dst, "null"...), i + 1, true
	case c == 0xc2:
		return append(dst, "false"...), i + 1, true
	case c == 0xc3:
		return append(dst, "true"...), i + 1, true
	case c >= 0xcc && c <= 0xd3: // uint8..64, int8..64
		size := 1 << ((c - 0xcc) & 3)
		if i+1+size > len(b) {
			return nil, 0, false
		}
		var u uint64
		for _, x := range b[i+1 : i+1+size] {
			u = u<<8 | uint64(x)
		}
		if c <= 0xcf {
			return strconv.AppendUint(dst, u, 10), i + 1 + size, true
		}
		shift := 64 - 8*size // sign-extend
		return strconv.AppendInt(dst, int64(u<<shift)>>shift, 10), i + 1 + size, true
	}
	if s, end, ok := msgpackStrAt(b, i); ok {
		if !jsonSafe(s) {
			return nil, 0, false
		}
		return append(append(append(dst, '"'), s...), '"'), end, true
	}
	n, j, isMap, ok := msgpackCount(b, i)
	if !ok || n > len(b)-j { // floats, binaries, extensions, or a length past the end
		return nil, 0, false
	}
	if !isMap {
		dst = append(dst, '[')
		for k := range n {
			if k > 0 {
				dst = append(dst, ',')
			}
			if dst, j, ok = msgpackValueToJSON(dst, b, j, depth+1); !ok {
				return nil, 0, false
			}
		}
		return append(dst, ']'), j, true
	}
	if n > fastKeys {
		return nil, 0, false
	}
	// Keys in sorted order, as encoding/json writes a map: collect each
	// entry's key and where its value starts, then write them sorted.
	type entry struct {
		key []byte
		val int
	}
	var ents [fastKeys]entry
	for k := range n {
		key, v, ok := msgpackStrAt(b, j)
		if !ok || !jsonSafe(key) {
			return nil, 0, false
		}
		end, err := skipMsgpack(b, v, depth+1)
		if err != nil {
			return nil, 0, false
		}
		e := entry{key, v}
		// Insertion sort; an equal key would make the last value win.
		m := k
		for ; m > 0; m-- {
			cmp := bytes.Compare(ents[m-1].key, key)
			if cmp == 0 {
				return nil, 0, false
			}
			if cmp < 0 {
				break
			}
			ents[m] = ents[m-1]
		}
		ents[m] = e
		j = end
	}
	dst = append(dst, '{')
	for k, e := range ents[:n] {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(append(dst, '"'), e.key...), '"', ':')
		if dst, _, ok = msgpackValueToJSON(dst, b, e.val, depth+1); !ok {
			return nil, 0, false
		}
	}
	return append(dst, '}'), j, true
}
