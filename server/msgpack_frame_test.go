package server

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/courier-im/courier/protocol"
)

// msgpackFrame puts the header in front of the converted payload, for
// each of the three header sizes.
func TestMsgpackFrameHeaders(t *testing.T) {
	for _, size := range []int{1, 100, 200, 70000} {
		js := []byte(`{"type":"message","data":"` + strings.Repeat("x", size) + `"}`)
		want, err := protocol.JSONToMsgpack(js)
		if err != nil {
			t.Fatal(err)
		}
		f := msgpackFrame(js, false)
		if f[0] != 0x82 {
			t.Fatalf("%d: first byte %#x", size, f[0])
		}
		n, h := int(f[1]), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(f[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(f[2:])), 10
		}
		if n != len(want) || !bytes.Equal(f[h:], want) {
			t.Errorf("%d: header says %d bytes, frame holds %d, want %d", size, n, len(f)-h, len(want))
		}
	}
}
