package protocol

import (
	"slices"
	"strconv"
	"time"

	"github.com/courier-im/courier"
)

// appendID appends `,"id":ID` when id is set.
func appendID(b []byte, id string) []byte {
	if id == "" {
		return b
	}
	b = append(b, `,"id":`...)
	return AppendString(b, id)
}

// appendLastSeen appends `"lastSeen":TIME` or null for the zero time.
func appendLastSeen(b []byte, t time.Time) []byte {
	b = append(b, `"lastSeen":`...)
	if t.IsZero() {
		return append(b, "null"...)
	}
	return AppendTime(b, t)
}

// AppendHistory appends the reply to a history or search frame: the
// messages, each as a message frame.
func AppendHistory(b []byte, id string, msgs []courier.Message) []byte {
	b = append(b, `{"type":"history"`...)
	b = appendID(b, id)
	b = append(b, `,"messages":[`...)
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendMessage(b, &msgs[i])
	}
	return append(b, "]}"...)
}

// AppendPresence appends the reply to a presence frame, users in name order.
func AppendPresence(b []byte, id string, ps map[string]courier.Presence) []byte {
	b = append(b, `{"type":"presence"`...)
	b = appendID(b, id)
	b = append(b, `,"users":{`...)
	users := make([]string, 0, len(ps))
	for u := range ps {
		users = append(users, u)
	}
	slices.Sort(users)
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		p := ps[u]
		b = AppendString(b, u)
		b = append(b, `:{"online":`...)
		b = strconv.AppendBool(b, p.Connections > 0)
		b = append(b, ',')
		b = appendLastSeen(b, p.LastSeen)
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

// AppendConversations appends the reply to a conversations frame.
func AppendConversations(b []byte, id string, cs []courier.Conversation) []byte {
	b = append(b, `{"type":"conversations"`...)
	b = appendID(b, id)
	b = append(b, `,"conversations":[`...)
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"with":`...)
		b = AppendString(b, cs[i].With)
		b = append(b, `,"last":`...)
		b = AppendMessage(b, &cs[i].Last)
		b = append(b, `,"unread":`...)
		b = strconv.AppendInt(b, int64(cs[i].Unread), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// AppendNotice appends a notice frame: a receipt
// ({"type":"receipt","status":"delivered"|"read","by":USER,"msg":ID}), a
// presence change ({"type":"presence","user":USER,"online":BOOL,"lastSeen":…})
// or the seqs a replay skips because retention deleted them
// ({"type":"expired","from":FIRST,"to":LAST}).
func AppendNotice(b []byte, n *courier.Notice) []byte {
	switch n.Kind {
	case courier.NoticeDelivered, courier.NoticeRead:
		b = append(b, `{"type":"receipt","status":`...)
		if n.Kind == courier.NoticeDelivered {
			b = append(b, `"delivered"`...)
		} else {
			b = append(b, `"read"`...)
		}
		b = append(b, `,"by":`...)
		b = AppendString(b, n.By)
		b = append(b, `,"msg":`...)
		b = AppendString(b, n.Msg)
	case courier.NoticePresence:
		b = append(b, `{"type":"presence","user":`...)
		b = AppendString(b, n.User)
		b = append(b, `,"online":`...)
		b = strconv.AppendBool(b, n.Online)
		b = append(b, ',')
		b = appendLastSeen(b, n.LastSeen)
	case courier.NoticeExpired:
		b = append(b, `{"type":"expired","from":`...)
		b = strconv.AppendUint(b, n.First, 10)
		b = append(b, `,"to":`...)
		b = strconv.AppendUint(b, n.Last, 10)
	default:
		b = append(b, `{"type":"notice"`...)
	}
	return append(b, '}')
}

// AppendDelivery appends what a delivery carries: its notice, or its message.
func AppendDelivery(b []byte, d *courier.Delivery) []byte {
	if d.Notice != nil {
		return AppendNotice(b, d.Notice)
	}
	return AppendMessage(b, &d.Message)
}
