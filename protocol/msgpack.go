package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// MessagePack is the binary encoding a client selects with the WebSocket
// subprotocol "courier.msgpack": every frame, both ways, is one binary
// message holding a MessagePack map with the same keys and values as the
// JSON frame. Messages are stored as JSON, so the codec converts at the
// edge: a client's frame into JSON on arrival, a server frame out of JSON on
// its way out (once per message, shared by every MessagePack connection).
const (
	SubprotocolJSON    = "courier.json"
	SubprotocolMsgpack = "courier.msgpack"
)

// MsgpackToJSON converts one MessagePack value into JSON. Binary strings
// become base64 strings (as encoding/json writes []byte); map keys must be
// strings; NaN and infinities are refused, as JSON has none.
func MsgpackToJSON(b []byte) ([]byte, error) {
	if out, ok := appendMsgpackAsJSON(make([]byte, 0, len(b)+len(b)/4+16), b); ok {
		return out, nil
	}
	return msgpackToJSONGeneral(b)
}

// msgpackToJSONGeneral is MsgpackToJSON for any value, through interface
// values and encoding/json.
func msgpackToJSONGeneral(b []byte) ([]byte, error) {
	if err := checkMsgpack(b); err != nil {
		return nil, err
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.SetMapDecoder(decodeStringMap)
	v, err := dec.DecodeInterfaceLoose()
	if err != nil {
		return nil, fmt.Errorf("invalid MessagePack: %w", err)
	}
	v, err = jsonable(v, 0)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("MessagePack value has no JSON form: %w", err)
	}
	return out, nil
}

// decodeStringMap decodes a map whose keys must be strings: the library's
// own untyped maps accept any key and panic on one that Go cannot hash.
func decodeStringMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, min(n, 64))
	for range n {
		k, err := d.DecodeString()
		if err != nil {
			return nil, errors.New("MessagePack map keys must be strings")
		}
		if m[k], err = d.DecodeInterfaceLoose(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// maxDepth bounds the nesting of a converted value.
const maxDepth = 64

// jsonable turns decoded MessagePack into values encoding/json can write.
func jsonable(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("MessagePack value nested too deep")
	}
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, errors.New("MessagePack map keys must be strings")
			}
			j, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[ks] = j
		}
		return m, nil
	case map[string]any:
		for k, e := range x {
			j, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case []any:
		for i, e := range x {
			j, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("MessagePack NaN or infinity has no JSON form")
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, errors.New("MessagePack NaN or infinity has no JSON form")
		}
	}
	return v, nil
}

// JSONToMsgpack converts one JSON value into MessagePack. Integers stay
// integers (the smallest int that holds them); other numbers become
// float64. Object keys keep their JSON order where the direct converter
// (msgpack_fast.go) handles the value, and are unordered otherwise.
func JSONToMsgpack(b []byte) ([]byte, error) {
	return AppendJSONToMsgpack(nil, b)
}

// AppendJSONToMsgpack is JSONToMsgpack appending to dst.
func AppendJSONToMsgpack(dst, b []byte) ([]byte, error) {
	if dst == nil {
		dst = make([]byte, 0, len(b))
	}
	if out, ok := appendJSONAsMsgpack(dst, b); ok {
		return out, nil
	}
	mp, err := jsonToMsgpackGeneral(b)
	if err != nil {
		return nil, err
	}
	return append(dst, mp...), nil
}

// jsonToMsgpackGeneral is JSONToMsgpack for any value, through interface
// values and the msgpack library's encoder.
func jsonToMsgpackGeneral(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := encodeNumbers(enc, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeNumbers writes v with json.Number as int64, uint64 or float64.
func encodeNumbers(enc *msgpack.Encoder, v any) error {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return enc.EncodeInt(i)
		}
		var u uint64
		if _, err := fmt.Sscan(string(x), &u); err == nil && !bytes.ContainsAny([]byte(x), ".eE-") {
			return enc.EncodeUint(u)
		}
		f, err := x.Float64()
		if err != nil {
			return fmt.Errorf("number %s: %w", x, err)
		}
		return enc.EncodeFloat64(f)
	case map[string]any:
		if err := enc.EncodeMapLen(len(x)); err != nil {
			return err
		}
		for k, e := range x {
			if err := enc.EncodeString(k); err != nil {
				return err
			}
			if err := encodeNumbers(enc, e); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := enc.EncodeArrayLen(len(x)); err != nil {
			return err
		}
		for _, e := range x {
			if err := encodeNumbers(enc, e); err != nil {
				return err
			}
		}
		return nil
	}
	return enc.Encode(v)
}
