package load

import "encoding/binary"

// The load generator's side of courier's MessagePack subprotocol
// (courier.msgpack, docs/protocol.md): client frames are built with append
// like the JSON ones, and server frames are scanned in place for the same
// few fields (type, id, data, seq), without a decoder.

// appendMPMap appends the header of a map of n (< 16) entries.
func appendMPMap(b []byte, n int) []byte { return append(b, 0x80|byte(n)) }

// appendMPStr appends s as a MessagePack str.
func appendMPStr[T string | []byte](b []byte, s T) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// appendMPBool appends true or false.
func appendMPBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// scanMsgpackFrame reads the top-level "type", "id", "data" and "seq" of
// the MessagePack map b; a str data is its bytes, any other data its raw
// MessagePack. One pass, no allocation.
func scanMsgpackFrame(b []byte, f *srvFrame) error {
	*f = srvFrame{}
	n, i, ok := mpMapLen(b, 0)
	if !ok {
		return errScan
	}
	for range n {
		key, ki, ok := mpStr(b, i)
		if !ok {
			return errScan
		}
		end, ok := mpSkip(b, ki, 0)
		if !ok {
			return errScan
		}
		switch string(key) {
		case "type":
			f.typ, _, _ = mpStr(b, ki)
		case "id":
			f.id, _, _ = mpStr(b, ki)
		case "data":
			if s, _, ok := mpStr(b, ki); ok {
				f.data, f.dataStr = s, true
			} else {
				f.data = b[ki:end]
			}
		case "seq":
			if f.seq, ok = mpUint(b[ki:end]); !ok {
				return errScan
			}
		}
		i = end
	}
	if i != len(b) {
		return errScan
	}
	return nil
}

// mpLen reads a big-endian length of size bytes at b[i:].
func mpLen(b []byte, i, size int) (int, int, bool) {
	if i+size > len(b) {
		return 0, 0, false
	}
	var v uint64
	for _, c := range b[i : i+size] {
		v = v<<8 | uint64(c)
	}
	if v > uint64(len(b)) {
		return 0, 0, false
	}
	return int(v), i + size, true
}

// mpMapLen reads a map header at b[i:]: its entry count and where the
// entries start.
func mpMapLen(b []byte, i int) (int, int, bool) {
	if i >= len(b) {
		return 0, 0, false
	}
	switch c := b[i]; {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), i + 1, true
	case c == 0xde:
		return mpLen(b, i+1, 2)
	case c == 0xdf:
		return mpLen(b, i+1, 4)
	}
	return 0, 0, false
}

// mpStr reads the str at b[i:] and returns it and where it ends.
func mpStr(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) {
		return nil, 0, false
	}
	var n, s int
	ok := true
	switch c := b[i]; {
	case c&0xe0 == 0xa0:
		n, s = int(c&0x1f), i+1
	case c == 0xd9:
		n, s, ok = mpLen(b, i+1, 1)
	case c == 0xda:
		n, s, ok = mpLen(b, i+1, 2)
	case c == 0xdb:
		n, s, ok = mpLen(b, i+1, 4)
	default:
		return nil, 0, false
	}
	if !ok || s+n > len(b) {
		return nil, 0, false
	}
	return b[s : s+n], s + n, true
}

// mpUint reads a non-negative integer that is the whole of b.
func mpUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	c := b[0]
	if c <= 0x7f {
		return uint64(c), len(b) == 1
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	}
	if size == 0 || len(b) != 1+size || (c >= 0xd0 && b[1]&0x80 != 0) {
		return 0, false
	}
	var v uint64
	for _, x := range b[1:] {
		v = v<<8 | uint64(x)
	}
	return v, true
}

// mpSkip returns where the value at b[i:] ends.
func mpSkip(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > 64 {
		return 0, false
	}
	c := b[i]
	// Fixed-size values: nil, booleans, fixints, numbers, fixext.
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return i + 1, true
	case c == 0xcc || c == 0xd0:
		return mpFixed(b, i, 2)
	case c == 0xcd || c == 0xd1:
		return mpFixed(b, i, 3)
	case c == 0xca || c == 0xce || c == 0xd2:
		return mpFixed(b, i, 5)
	case c == 0xcb || c == 0xcf || c == 0xd3:
		return mpFixed(b, i, 9)
	case c >= 0xd4 && c <= 0xd8:
		return mpFixed(b, i, 2+1<<(c-0xd4))
	}
	// Strings and binaries.
	if _, end, ok := mpStr(b, i); ok {
		return end, true
	}
	if c >= 0xc4 && c <= 0xc9 { // bin 8/16/32, ext 8/16/32 (ext has a type byte)
		size, ext := 1<<((c-0xc4)%3), 0
		if c >= 0xc7 {
			ext = 1
		}
		n, s, ok := mpLen(b, i+1, size)
		if !ok || s+ext+n > len(b) {
			return 0, false
		}
		return s + ext + n, true
	}
	// Containers.
	var n, s int
	ok, pairs := true, false
	switch {
	case c&0xf0 == 0x90:
		n, s = int(c&0x0f), i+1
	case c == 0xdc:
		n, s, ok = mpLen(b, i+1, 2)
	case c == 0xdd:
		n, s, ok = mpLen(b, i+1, 4)
	default:
		n, s, ok = mpMapLen(b, i)
		pairs = true
	}
	if !ok {
		return 0, false
	}
	if pairs {
		n *= 2
	}
	for range n {
		if s, ok = mpSkip(b, s, depth+1); !ok {
			return 0, false
		}
	}
	return s, true
}

func mpFixed(b []byte, i, n int) (int, bool) {
	if i+n > len(b) {
		return 0, false
	}
	return i + n, true
}
