package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /api/send", s.api(s.apiMessage(false)))
	mux.HandleFunc("POST /api/publish", s.api(s.apiMessage(true)))
	mux.HandleFunc("GET /api/presence", s.api(s.apiPresence))
	mux.HandleFunc("POST /api/disconnect", s.api(s.apiDisconnect))
	mux.HandleFunc("GET /api/history", s.api(s.apiHistory))
	mux.HandleFunc("/api/", s.api(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, protocol.CodeNotFound, "no such API endpoint or method: "+r.Method+" "+r.URL.Path)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /dev/token", s.devToken)
	if s.cfg.DemoPage != nil {
		mux.Handle("/", s.cfg.DemoPage)
	}
	return mux
}

// writeError writes the server API's error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// api guards a server API handler with the API key.
func (s *Server) api(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := ""
		if a := r.Header.Get("Authorization"); len(a) > 7 && (a[:7] == "Bearer " || a[:7] == "bearer ") {
			key = a[7:]
		}
		if s.cfg.APIKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) != 1 {
			writeError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "missing or wrong API key")
			return
		}
		h(w, r)
	}
}

// decodeBody reads a JSON body of at most MaxMessage bytes into v.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxMessage)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "body larger than the message limit")
		} else {
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "could not read body")
		}
		return false
	}
	if !utf8.Valid(body) {
		// Text frames must be UTF-8; a stored message that is not would
		// break every client it is replayed to.
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "body is not valid UTF-8")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "body is not the expected JSON object: "+err.Error())
		return false
	}
	return true
}

// hubError answers a hub error with its HTTP status.
func hubError(w http.ResponseWriter, err error) {
	pe := protocolError("", err)
	status := map[string]int{
		protocol.CodeBadRequest:  http.StatusBadRequest,
		protocol.CodeForbidden:   http.StatusForbidden,
		protocol.CodeNotFound:    http.StatusNotFound,
		protocol.CodeTooLarge:    http.StatusRequestEntityTooLarge,
		protocol.CodeRateLimited: http.StatusTooManyRequests,
	}[pe.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeError(w, status, pe.Code, pe.Message)
}

type apiBody struct {
	To       string          `json:"to"`
	Room     string          `json:"room"`
	From     string          `json:"from"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	Volatile bool            `json:"volatile"`
	Key      string          `json:"key"`
}

// apiMessage returns the handler of POST /api/send (toRoom false) or
// POST /api/publish (toRoom true).
func (s *Server) apiMessage(toRoom bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var m apiBody
		if !s.decodeBody(w, r, &m) {
			return
		}
		o := courier.Outgoing{From: m.From, Label: true, Event: m.Event, Data: m.Data, Volatile: m.Volatile, Key: m.Key}
		switch {
		case toRoom && m.Room == "":
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, `missing "room"`)
			return
		case toRoom:
			o.Room = m.Room
		case m.To == "":
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, `missing "to"`)
			return
		default:
			o.To = m.To
		}
		s.apiPost(w, r, o)
	}
}

func (s *Server) apiPost(w http.ResponseWriter, r *http.Request, o courier.Outgoing) {
	rc, err := s.hub.Send(r.Context(), o)
	if err != nil {
		hubError(w, err)
		return
	}
	out := map[string]any{"msg": rc.ID, "delivered": rc.Delivered}
	if rc.Seq != 0 {
		out["seq"] = rc.Seq
	}
	if rc.Duplicate {
		out["duplicate"] = true
	}
	writeJSON(w, out)
}

func (s *Server) apiPresence(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if !courier.ValidUser(user) {
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "missing or invalid user")
		return
	}
	p, err := s.hub.Presence(r.Context(), user)
	if err != nil {
		s.log.Error("presence", "user", user, "err", err)
		writeError(w, http.StatusInternalServerError, protocol.CodeInternal, "could not read presence")
		return
	}
	out := map[string]any{"online": p.Connections > 0, "connections": p.Connections, "lastSeen": nil}
	if !p.LastSeen.IsZero() {
		out["lastSeen"] = p.LastSeen.UTC().Format(protocol.TimeFormat)
	}
	writeJSON(w, out)
}

func (s *Server) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User string `json:"user"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	if !courier.ValidUser(req.User) {
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "missing or invalid user")
		return
	}
	n := s.hub.Disconnect(r.Context(), req.User, courier.CloseDisconnected, "disconnected by the server")
	writeJSON(w, map[string]any{"disconnected": n})
}

func (s *Server) devToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.DevToken == nil {
		http.NotFound(w, r)
		return
	}
	user := r.URL.Query().Get("user")
	if !courier.ValidUser(user) {
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "missing or invalid user")
		return
	}
	t, err := s.cfg.DevToken(user)
	if err != nil {
		writeError(w, http.StatusInternalServerError, protocol.CodeInternal, "could not mint a token")
		return
	}
	writeJSON(w, map[string]string{"token": t})
}
