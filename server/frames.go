package server

import (
	"context"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// queryTimeout bounds a frame that reads the store or asks the cluster.
const queryTimeout = 10 * time.Second

// handleQuery carries out the frames that read (history, search, presence,
// conversations) or mark (watch, unwatch, read) rather than send; it reports
// false for any other type.
func (s *Server) handleQuery(l *link, f *protocol.Frame) bool {
	c := l.conn
	id := f.ID
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	switch f.Type {
	case protocol.TypeHistory, protocol.TypeSearch:
		var msgs []courier.Message
		var err error
		switch {
		case f.Type == protocol.TypeSearch:
			msgs, err = s.hub.Search(ctx, c.User(), f.Q, f.Limit)
		case f.Room != "":
			identity := c.Identity()
			msgs, err = s.hub.RoomHistory(ctx, &identity, f.Room, f.Before, f.Limit)
		default:
			msgs, err = s.hub.History(ctx, c.User(), f.With, f.Before, f.Limit)
		}
		if err != nil {
			l.failQuery(id, err)
			return true
		}
		l.reply(func(b []byte) []byte { return protocol.AppendHistory(b, id, msgs) })
	case protocol.TypePresence:
		ps, err := s.hub.PresenceOf(ctx, f.Users)
		if err != nil {
			l.failQuery(id, err)
			return true
		}
		l.reply(func(b []byte) []byte { return protocol.AppendPresence(b, id, ps) })
	case protocol.TypeWatch:
		now, err := s.hub.Watch(ctx, c, f.Users)
		if err != nil {
			l.failQuery(id, err)
			return true
		}
		l.ack(protocol.Ack{ID: id})
		for i := range now {
			l.Deliver(&courier.Delivery{Notice: &now[i]})
		}
	case protocol.TypeUnwatch:
		s.hub.Unwatch(c, f.Users)
		l.ack(protocol.Ack{ID: id})
	case protocol.TypeRead:
		if err := s.hub.MarkRead(ctx, c.User(), f.With, *f.Seq); err != nil {
			l.failQuery(id, err)
			return true
		}
		l.ack(protocol.Ack{ID: id})
	case protocol.TypeConversations:
		cs, err := s.hub.Conversations(ctx, c.User(), f.Limit)
		if err != nil {
			l.failQuery(id, err)
			return true
		}
		l.reply(func(b []byte) []byte { return protocol.AppendConversations(b, id, cs) })
	default:
		return false
	}
	return true
}

// failQuery answers a failed read or mark with an error frame; an internal
// failure is logged and reported without its details.
func (l *link) failQuery(id string, err error) {
	pe := protocolError(id, err)
	if pe.Code == protocol.CodeInternal {
		l.srv.log.Warn("query failed", append(l.conn.LogAttrs(), "err", err)...)
		pe.Message = "the request could not be served; try again"
	}
	l.fail(pe)
}
