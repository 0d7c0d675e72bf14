package nats

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// A topic travels as the subject <prefix>.t<base64url(topic)>: base64url
// without padding uses only letters, digits, '-' and '_', so no topic can
// hold a NATS separator ('.'), wildcard ('*', '>') or white space, the
// leading 't' keeps the token of the empty topic non-empty, and distinct
// topics always give distinct subjects. The topics of a cluster are all
// under <prefix>.>, which is what to watch with `nats sub`.
var topicEncoding = base64.RawURLEncoding

// topicMarker starts the token that carries a topic.
const topicMarker = ".t"

// checkPrefix reports whether prefix can lead a subject: one or more
// tokens of printable characters other than the wildcards, separated by
// single dots.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return errors.New("empty subject prefix")
	}
	for _, token := range strings.Split(prefix, ".") {
		if token == "" {
			return fmt.Errorf("subject prefix %q has an empty token", prefix)
		}
		if token == "*" || token == ">" {
			return fmt.Errorf("subject prefix %q has a wildcard token", prefix)
		}
		for _, r := range token {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("subject prefix %q has a space or control character", prefix)
			}
		}
	}
	return nil
}

// subject returns the subject of topic under base (the prefix and marker).
func subject(base, topic string) string {
	buf := make([]byte, len(base)+topicEncoding.EncodedLen(len(topic)))
	copy(buf, base)
	topicEncoding.Encode(buf[len(base):], []byte(topic))
	return string(buf)
}

// topicOf returns the topic a subject under base carries.
func topicOf(base, subj string) (string, error) {
	enc, ok := strings.CutPrefix(subj, base)
	if !ok {
		return "", fmt.Errorf("subject %q is not under %q", subj, base)
	}
	topic, err := topicEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("subject %q: %w", subj, err)
	}
	return string(topic), nil
}
