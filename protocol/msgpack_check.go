package protocol

import (
	"encoding/binary"
	"errors"
)

var errMsgpackShape = errors.New("invalid MessagePack: truncated, oversized or too deeply nested")

// checkMsgpack walks one MessagePack value without decoding it and fails
// when a length claims more than the input holds. A decoder trusts those
// lengths to size its maps and slices, so a 5-byte frame claiming four
// billion entries would otherwise cost gigabytes.
func checkMsgpack(b []byte) error {
	end, err := skipMsgpack(b, 0, 0)
	if err != nil {
		return err
	}
	if end != len(b) {
		return errors.New("invalid MessagePack: more than one value")
	}
	return nil
}

// skipMsgpack returns the offset just past the value at b[i:].
func skipMsgpack(b []byte, i, depth int) (int, error) {
	if depth > maxDepth || i >= len(b) {
		return 0, errMsgpackShape
	}
	c := b[i]
	i++
	// n reads an n-byte big-endian length at b[i:].
	n := func(size int) (int, bool) {
		if i+size > len(b) {
			return 0, false
		}
		var v uint64
		switch size {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += size
		if v > uint64(len(b)) {
			return 0, false
		}
		return int(v), true
	}
	bytesOf := func(l int, ok bool) (int, error) {
		if !ok || i+l > len(b) {
			return 0, errMsgpackShape
		}
		return i + l, nil
	}
	items := func(count int, ok bool) (int, error) {
		if !ok || count > len(b)-i {
			return 0, errMsgpackShape
		}
		var err error
		for k := 0; k < count; k++ {
			if i, err = skipMsgpack(b, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return i, nil
	case c >= 0x80 && c <= 0x8f:
		return items(2*int(c&0x0f), true)
	case c >= 0x90 && c <= 0x9f:
		return items(int(c&0x0f), true)
	case c >= 0xa0 && c <= 0xbf:
		return bytesOf(int(c&0x1f), true)
	}
	switch c {
	case 0xc4, 0xd9:
		return bytesOf(n(1))
	case 0xc5, 0xda:
		return bytesOf(n(2))
	case 0xc6, 0xdb:
		return bytesOf(n(4))
	case 0xc7:
		l, ok := n(1)
		return bytesOf(l+1, ok)
	case 0xc8:
		l, ok := n(2)
		return bytesOf(l+1, ok)
	case 0xc9:
		l, ok := n(4)
		return bytesOf(l+1, ok)
	case 0xcc, 0xd0:
		return bytesOf(1, true)
	case 0xcd, 0xd1:
		return bytesOf(2, true)
	case 0xca, 0xce, 0xd2:
		return bytesOf(4, true)
	case 0xcb, 0xcf, 0xd3:
		return bytesOf(8, true)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return bytesOf(1+1<<(c-0xd4), true)
	case 0xdc:
		return items(n(2))
	case 0xdd:
		return items(n(4))
	case 0xde:
		l, ok := n(2)
		return items(2*l, ok)
	case 0xdf:
		l, ok := n(4)
		return items(2*l, ok)
	}
	return 0, errMsgpackShape // 0xc1 is never used
}
