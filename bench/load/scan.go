package load

import (
	"encoding/json"
	"errors"
)

// srvFrame holds the fields of a courier server frame the load generator
// needs; byte slices point into the scanned message.
type srvFrame struct {
	typ, id []byte
	data    []byte // a string's contents, or the raw JSON of another value
	dataStr bool   // data was a JSON string
	dataEsc bool   // ... with escapes still in it
	seq     uint64
}

var errScan = errors.New("malformed frame")

// scanFrame reads the top-level "type", "id", "data" and "seq" of the
// JSON object b without building anything: one pass, no allocation.
func scanFrame(b []byte, f *srvFrame) error {
	*f = srvFrame{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errScan
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return errScan
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] != '"' {
			return errScan
		}
		ke, _, ok := stringEnd(b, i)
		if !ok {
			return errScan
		}
		key := b[i+1 : ke]
		i = skipWS(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return errScan
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return errScan
		}
		vs := i
		var esc bool
		switch b[i] {
		case '"':
			var e int
			e, esc, ok = stringEnd(b, i)
			i = e + 1
		case '{', '[':
			i, ok = skipNested(b, i)
		default:
			for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
				i++
			}
			ok = i > vs
		}
		if !ok {
			return errScan
		}
		v := b[vs:i]
		switch string(key) {
		case "type":
			f.typ = unquote(v)
		case "id":
			f.id = unquote(v)
		case "data":
			if v[0] == '"' {
				f.data, f.dataStr, f.dataEsc = v[1:len(v)-1], true, esc
			} else {
				f.data = v
			}
		case "seq":
			var n uint64
			for _, c := range v {
				if c < '0' || c > '9' {
					return errScan
				}
				n = n*10 + uint64(c-'0')
			}
			f.seq = n
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// payload returns the data as the sender passed it: a string's contents
// (unescaped, which allocates, only when it has escapes), else the raw
// JSON.
func (f *srvFrame) payload() []byte {
	if !f.dataEsc {
		return f.data
	}
	var s string
	q := make([]byte, 0, len(f.data)+2)
	q = append(append(append(q, '"'), f.data...), '"')
	if json.Unmarshal(q, &s) != nil {
		return f.data
	}
	return []byte(s)
}

func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the closing quote of the string opening
// at b[i], and whether it holds escapes.
func stringEnd(b []byte, i int) (int, bool, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j, esc, true
		}
	}
	return 0, false, false
}

// skipNested returns the index after the object or array opening at b[i].
func skipNested(b []byte, i int) (int, bool) {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case '"':
			e, _, ok := stringEnd(b, i)
			if !ok {
				return 0, false
			}
			i = e
		}
	}
	return 0, false
}

// appendJSONText appends s as a JSON string; plain text (the load
// generator's payloads and names) is copied as is.
func appendJSONText[T string | []byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(s))
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
