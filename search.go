package courier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Search query limits.
const (
	MaxQueryLen   = 256 // bytes of a search query
	MaxQueryTerms = 16  // terms of a search query
)

// A Query is a parsed full-text search: a message matches when every term
// does. Stores translate it to their engine (SQLite FTS5, PostgreSQL
// tsquery); since every word holds only letters and digits, no quoting or
// operator of the engine can reach it.
type Query struct {
	Terms []Term
}

// A Term is one word, or a phrase of words that must follow one another.
type Term struct {
	Words  []string // lower-case runs of letters and digits
	Prefix bool     // the last word matches any word it begins
}

// ParseQuery parses what a user typed into a search box:
//
//	pizza friday     both words, anywhere
//	"pizza friday"   the phrase
//	piz*             a word beginning with piz
//
// Anything but letters and digits separates words, so "e-mail" is the
// phrase "e mail". A query that is empty, too long, has an unbalanced quote
// or a stray * is ErrBadRequest.
func ParseQuery(s string) (Query, error) {
	bad := func(format string, a ...any) (Query, error) {
		return Query{}, fmt.Errorf("%w: search: "+format, append([]any{ErrBadRequest}, a...)...)
	}
	if len(s) > MaxQueryLen {
		return bad("query longer than %d bytes", MaxQueryLen)
	}
	if !utf8.ValidString(s) {
		return bad("query is not UTF-8")
	}
	if strings.Count(s, `"`)%2 != 0 {
		return bad("unbalanced quote")
	}
	var q Query
	for i, part := range strings.Split(s, `"`) {
		if i%2 == 1 { // inside quotes: one phrase
			t, err := parseTerm(part)
			if err != nil {
				return bad("%v", err)
			}
			if len(t.Words) > 0 {
				q.Terms = append(q.Terms, t)
			}
			continue
		}
		for _, field := range strings.Fields(part) {
			t, err := parseTerm(field)
			if err != nil {
				return bad("%v", err)
			}
			if len(t.Words) > 0 {
				q.Terms = append(q.Terms, t)
			}
		}
	}
	if len(q.Terms) == 0 {
		return bad("no words to search for")
	}
	if len(q.Terms) > MaxQueryTerms {
		return bad("more than %d terms", MaxQueryTerms)
	}
	return q, nil
}

// parseTerm splits s into words; a trailing * makes the last a prefix.
func parseTerm(s string) (Term, error) {
	var t Term
	if strings.HasSuffix(s, "*") {
		t.Prefix = true
		s = s[:len(s)-1]
	}
	if strings.Contains(s, "*") {
		return t, fmt.Errorf("* only ends a word")
	}
	t.Words = Words(s)
	if t.Prefix && len(t.Words) == 0 {
		return t, fmt.Errorf("* must follow a word")
	}
	return t, nil
}

// Words returns the lower-case runs of letters and digits in s.
func Words(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i, w := range f {
		f[i] = strings.ToLower(w)
	}
	return f
}

// SearchText returns the text a store indexes for a message: every string
// value inside data (object keys excepted), separated by newlines. Data that
// is not JSON gives what could be read before the error.
func SearchText(data json.RawMessage) string {
	if len(data) == 0 || bytes.IndexByte(data, '"') < 0 {
		return ""
	}
	if !json.Valid(data) {
		return searchTextTokens(data)
	}
	return string(appendSearchText(nil, data))
}

// appendSearchText appends SearchText(data) to b for valid JSON data. It is
// SearchText's fast path: the indexer runs it on every stored message, and
// json.Decoder's tokens cost several allocations each. In valid JSON a
// string is an object key exactly when a colon follows it, so no stack of
// open objects is needed.
func appendSearchText(b, data []byte) []byte {
	start := len(b)
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue // numbers, literals, delimiters, spaces: never indexed
		}
		end, escaped := i+1, false
		for ; end < len(data) && data[end] != '"'; end++ {
			if data[end] == '\\' {
				escaped = true
				end++
			}
		}
		raw := data[i : end+1] // with its quotes
		i = end
		next := end + 1
		for next < len(data) && (data[next] == ' ' || data[next] == '\t' || data[next] == '\n' || data[next] == '\r') {
			next++
		}
		if next < len(data) && data[next] == ':' {
			continue // a key
		}
		if len(b) > start { // as searchTextTokens: no newline after empty strings at the start
			b = append(b, '\n')
		}
		if !escaped && utf8.Valid(raw) {
			b = append(b, raw[1:len(raw)-1]...)
			continue
		}
		// Escapes and invalid UTF-8 decode as encoding/json does (U+FFFD
		// for a bad byte); NUL, which only an escape can make, becomes a
		// space as in searchTextTokens.
		var v string
		if err := json.Unmarshal(raw, &v); err == nil {
			b = append(b, strings.ReplaceAll(v, "\x00", " ")...)
		}
	}
	return b
}

// searchTextTokens is SearchText for data that is not valid JSON: it reads
// tokens until the first error.
func searchTextTokens(data json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	var b strings.Builder
	// One entry per open object or array: in an object, strings alternate
	// between keys and values.
	type level struct{ object, keyNext bool }
	var stack []level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].keyNext = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return b.String()
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, level{object: true, keyNext: true})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].keyNext {
				stack[n-1].keyNext = false
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(strings.ReplaceAll(v, "\x00", " "))
			valueDone()
		default:
			valueDone()
		}
	}
}
