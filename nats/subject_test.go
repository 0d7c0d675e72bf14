package nats

import (
	"strings"
	"testing"
)

// FuzzSubject: every topic maps to a valid subject of exactly two tokens
// under the prefix, without wildcards or white space, and back.
func FuzzSubject(f *testing.F) {
	for _, topic := range []string{"", " ", "a.b", "*", ">", "a b", "日本語", "\x00\xff", strings.Repeat(".", 512)} {
		f.Add(topic)
	}
	base := "courier" + topicMarker
	f.Fuzz(func(t *testing.T, topic string) {
		subj := subject(base, topic)
		tokens := strings.Split(subj, ".")
		if len(tokens) != 2 || tokens[0] != "courier" || !strings.HasPrefix(tokens[1], "t") {
			t.Fatalf("topic %q: subject %q is not courier.t<token>", topic, subj)
		}
		if strings.ContainsAny(tokens[1], "*> \t\r\n") {
			t.Fatalf("topic %q: subject %q holds a wildcard or white space", topic, subj)
		}
		got, err := topicOf(base, subj)
		if err != nil || got != topic {
			t.Fatalf("topic %q: subject %q decodes to %q, %v", topic, subj, got, err)
		}
	})
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"courier", "app.courier", "courier-test-1f2e", "$courier"} {
		if err := checkPrefix(ok); err != nil {
			t.Errorf("checkPrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "*", "a.>", "a b", "a\tb", "a\x7f"} {
		if err := checkPrefix(bad); err == nil {
			t.Errorf("checkPrefix(%q) accepted it", bad)
		}
	}
}

func TestTopicOfForeignSubject(t *testing.T) {
	base := "courier" + topicMarker
	for _, subj := range []string{"other.tYQ", "courier.t!!", "courier.x"} {
		if _, err := topicOf(base, subj); err == nil {
			t.Errorf("topicOf(%q) returned no error", subj)
		}
	}
}
