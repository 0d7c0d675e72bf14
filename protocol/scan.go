package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The frame decoder is a single pass over the bytes, written for the hot
// path: a send frame decodes in a fraction of what encoding/json's
// reflection costs, with one allocation per string field. It accepts and
// rejects exactly what encoding/json would for the Frame struct, except
// that field names must match exactly (the contract's names are exact);
// FuzzDecodeMatchesEncodingJSON holds it to that.

// frameScanner reads one JSON object into a Frame.
type frameScanner struct {
	b       []byte
	i       int
	typeErr string // first field with a wrong-typed value
}

type syntaxError struct{}

func (syntaxError) Error() string { return "malformed JSON" }

func (s *frameScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// decodeFrame fills f from b. It returns syntaxError for invalid JSON, and
// otherwise reports a wrong-typed field through s.typeErr.
func (s *frameScanner) decodeFrame(f *Frame) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return syntaxError{}
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		s.ws()
		key, ok := s.rawString()
		if !ok {
			return syntaxError{}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return syntaxError{}
		}
		s.i++
		s.ws()
		if err := s.field(f, key); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return syntaxError{}
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.end()
		default:
			return syntaxError{}
		}
	}
}

// end checks that nothing but whitespace follows the object.
func (s *frameScanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return syntaxError{}
	}
	return nil
}

func (s *frameScanner) wrongType(field string) {
	if s.typeErr == "" {
		s.typeErr = field
	}
}

// field decodes the value of key into f.
func (s *frameScanner) field(f *Frame, key []byte) error {
	switch string(key) {
	case "type":
		if t, ok := s.knownType(); ok {
			f.Type = t
			return nil
		}
		return s.stringInto(&f.Type, "type")
	case "to":
		return s.stringInto(&f.To, "to")
	case "event":
		return s.stringInto(&f.Event, "event")
	case "key":
		return s.stringInto(&f.Key, "key")
	case "room":
		return s.stringInto(&f.Room, "room")
	case "with":
		return s.stringInto(&f.With, "with")
	case "q":
		return s.stringInto(&f.Q, "q")
	case "id":
		f.ID = ""
		if s.i < len(s.b) && s.b[s.i] == '"' {
			v, ok := s.str()
			if !ok {
				return syntaxError{}
			}
			f.ID = v
			return nil
		}
		return s.skip(0)
	case "data":
		start := s.i
		if err := s.skip(0); err != nil {
			return err
		}
		f.Data = append(json.RawMessage(nil), s.b[start:s.i]...)
		return nil
	case "volatile":
		switch {
		case s.literal("true"):
			f.Volatile = true
		case s.literal("false"):
			f.Volatile = false
		case s.literal("null"):
		default:
			s.wrongType("volatile")
			return s.skip(0)
		}
		return nil
	case "since", "seq":
		p := &f.Since
		if key[0] == 's' && len(key) == 3 {
			p = &f.Seq
		}
		if s.literal("null") {
			*p = nil
			return nil
		}
		n, ok, err := s.uint()
		if err != nil || !ok {
			s.wrongType(string(key))
			return err
		}
		*p = &n
		return nil
	case "before":
		if s.literal("null") {
			return nil
		}
		n, ok, err := s.uint()
		if err != nil || !ok {
			s.wrongType("before")
			return err
		}
		f.Before = n
		return nil
	case "limit":
		if s.literal("null") {
			return nil
		}
		tok, err := s.number()
		if err != nil {
			if s.isNotNumber() {
				s.wrongType("limit")
				return s.skip(0)
			}
			return err
		}
		n, perr := strconv.ParseInt(string(tok), 10, 0)
		if perr != nil {
			s.wrongType("limit")
			return nil
		}
		f.Limit = int(n)
		return nil
	case "users":
		return s.users(f)
	}
	return s.skip(0)
}

// types are the frame types, so that decoding one costs no allocation.
var types = []string{TypeSend, TypeJoin, TypeLeave, TypePublish, TypeResume, TypeHistory, TypeSearch,
	TypePresence, TypeWatch, TypeUnwatch, TypeRead, TypeConversations, TypePing}

// knownType consumes a plain string value naming a frame type.
func (s *frameScanner) knownType() (string, bool) {
	for _, t := range types {
		if n := len(t) + 2; len(s.b)-s.i >= n && s.b[s.i] == '"' && s.b[s.i+n-1] == '"' && string(s.b[s.i+1:s.i+n-1]) == t {
			s.i += n
			return t, true
		}
	}
	return "", false
}

// stringInto decodes a string value into *dst, or notes a wrong type.
func (s *frameScanner) stringInto(dst *string, field string) error {
	if s.literal("null") {
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '"' {
		v, ok := s.str()
		if !ok {
			return syntaxError{}
		}
		*dst = v
		return nil
	}
	s.wrongType(field)
	return s.skip(0)
}

func (s *frameScanner) users(f *Frame) error {
	if s.literal("null") {
		f.Users = nil
		return nil
	}
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		s.wrongType("users")
		return s.skip(0)
	}
	s.i++
	users := f.Users[:0]
	if users == nil {
		users = []string{}
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		f.Users = users
		return nil
	}
	for {
		s.ws()
		switch {
		case s.literal("null"):
			users = append(users, "")
		case s.i < len(s.b) && s.b[s.i] == '"':
			v, ok := s.str()
			if !ok {
				return syntaxError{}
			}
			users = append(users, v)
		default:
			s.wrongType("users")
			if err := s.skip(1); err != nil {
				return err
			}
		}
		s.ws()
		if s.i >= len(s.b) {
			return syntaxError{}
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			f.Users = users
			return nil
		default:
			return syntaxError{}
		}
	}
}

// literal consumes lit if it comes next.
func (s *frameScanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *frameScanner) isNotNumber() bool {
	if s.i >= len(s.b) {
		return false
	}
	c := s.b[s.i]
	return c != '-' && (c < '0' || c > '9')
}

// uint decodes a number that must be a non-negative integer that fits
// uint64. ok is false (and the value skipped) for another type or number.
func (s *frameScanner) uint() (uint64, bool, error) {
	if s.isNotNumber() {
		return 0, false, s.skip(0)
	}
	tok, err := s.number()
	if err != nil {
		return 0, false, err
	}
	n, perr := strconv.ParseUint(string(tok), 10, 64)
	return n, perr == nil, nil
}

// number consumes a JSON number and returns its text.
func (s *frameScanner) number() ([]byte, error) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, syntaxError{}
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return nil, syntaxError{}
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return nil, syntaxError{}
		}
	}
	return s.b[start:s.i], nil
}

func (s *frameScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// rawString consumes a string and returns its bytes between the quotes,
// undecoded (for keys, which are compared as written).
func (s *frameScanner) rawString() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i
	if !s.skipString() {
		return nil, false
	}
	return s.b[start+1 : s.i-1], true
}

// str consumes a string and returns its decoded value. Plain ASCII is
// copied as is; escapes and other bytes take encoding/json's path, which
// also turns invalid UTF-8 into U+FFFD.
func (s *frameScanner) str() (string, bool) {
	start := s.i
	if !s.skipString() {
		return "", false
	}
	body := s.b[start+1 : s.i-1]
	for _, c := range body {
		if c == '\\' || c >= utf8.RuneSelf {
			var v string
			if json.Unmarshal(s.b[start:s.i], &v) != nil {
				return "", false
			}
			return v, true
		}
	}
	return string(body), true
}

// skipString consumes a string, checking escapes and control characters.
func (s *frameScanner) skipString() bool {
	s.i++ // the opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			s.i++
		}
	}
	return false
}

// maxNesting bounds how deep a skipped value may nest, as encoding/json
// does (10000), so that a hostile frame cannot exhaust the stack.
const maxNesting = 10000

// skip consumes any JSON value, validating it.
func (s *frameScanner) skip(depth int) error {
	if depth > maxNesting {
		return syntaxError{}
	}
	s.ws()
	if s.i >= len(s.b) {
		return syntaxError{}
	}
	switch c := s.b[s.i]; {
	case c == '"':
		if !s.skipString() {
			return syntaxError{}
		}
		return nil
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == closer {
			s.i++
			return nil
		}
		for {
			s.ws()
			if c == '{' {
				if _, ok := s.rawString(); !ok {
					return syntaxError{}
				}
				s.ws()
				if s.i >= len(s.b) || s.b[s.i] != ':' {
					return syntaxError{}
				}
				s.i++
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) {
				return syntaxError{}
			}
			if s.b[s.i] == ',' {
				s.i++
				continue
			}
			if s.b[s.i] == closer {
				s.i++
				return nil
			}
			return syntaxError{}
		}
	case s.literal("true"), s.literal("false"), s.literal("null"):
		return nil
	default:
		_, err := s.number()
		return err
	}
}
