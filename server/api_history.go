package server

import (
	"net/http"
	"strconv"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// apiHistory serves GET /api/history?user=U&with=P or ?room=R, with limit
// and before: the history frame's reply, for the application's backend.
func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, before := 0, uint64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "limit is not a number")
			return
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "before is not a seq")
			return
		}
		before = n
	}
	var msgs []courier.Message
	var err error
	switch room, user, with := q.Get("room"), q.Get("user"), q.Get("with"); {
	case room != "" && (user != "" || with != ""):
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "give either room, or user and with")
		return
	case room != "":
		msgs, err = s.hub.RoomHistory(r.Context(), nil, room, before, limit)
	case !courier.ValidUser(user) || with == "":
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "give room, or user and with")
		return
	default:
		msgs, err = s.hub.History(r.Context(), user, with, before, limit)
	}
	if err != nil {
		if pe := protocolError("", err); pe.Code == protocol.CodeInternal {
			s.log.Error("history", "err", err)
			writeError(w, http.StatusInternalServerError, pe.Code, "the request could not be served; try again")
			return
		}
		hubError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	b := protocol.AppendHistory(nil, "", msgs)
	// The history frame without its type: {"messages":[...]}.
	b = append([]byte(`{"messages"`), b[len(`{"type":"history","messages"`):]...)
	_, _ = w.Write(append(b, '\n'))
}
