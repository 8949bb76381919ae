package hub

import (
	"encoding/json"
	"net/http"
	"strconv"

	"yibao"
	"yibao/settlement"
	"yibao/xregion/wire"
)

// Handler serves the hub's API: signed messages from nodes under
// /hub/v1/, and the administrator's read and clearing endpoints (bearer
// token) under /hub/v1/admin/.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("POST /hub/v1/forward", h.signed(func(r *http.Request, from string, body []byte) (any, error) {
		var in struct {
			Admdvs string          `json:"admdvs"`
			Path   string          `json:"path"`
			Body   json.RawMessage `json:"body"`
		}
		if err := wire.Decode(body, &in); err != nil {
			return nil, err
		}
		return h.Forward(r.Context(), from, in.Admdvs, in.Path, in.Body)
	}))
	mux.HandleFunc("POST /hub/v1/begin", h.signed(func(r *http.Request, from string, body []byte) (any, error) {
		var m settlement.Prepare
		if err := wire.Decode(body, &m); err != nil {
			return nil, err
		}
		return h.Begin(r.Context(), from, &m)
	}))
	mux.HandleFunc("POST /hub/v1/decision", h.signed(func(r *http.Request, from string, body []byte) (any, error) {
		var in struct {
			TxID string `json:"txid"`
		}
		if err := wire.Decode(body, &in); err != nil {
			return nil, err
		}
		return h.Decision(r.Context(), from, in.TxID)
	}))
	mux.HandleFunc("POST /hub/v1/reverse", h.signed(func(r *http.Request, from string, body []byte) (any, error) {
		var in struct {
			TxID string `json:"txid"`
		}
		if err := wire.Decode(body, &in); err != nil {
			return nil, err
		}
		m, err := h.Reverse(r.Context(), from, in.TxID)
		return map[string]string{"rev_month": m}, err
	}))
	mux.HandleFunc("GET /hub/v1/admin/status", h.admin(func(r *http.Request) (any, error) { return h.Status(r.Context()) }))
	mux.HandleFunc("GET /hub/v1/admin/txns", h.admin(func(r *http.Request) (any, error) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		return h.Txns(r.Context(), r.URL.Query().Get("clr_month"), limit)
	}))
	mux.HandleFunc("GET /hub/v1/admin/txns/{id}", h.admin(func(r *http.Request) (any, error) { return h.Txn(r.Context(), r.PathValue("id")) }))
	mux.HandleFunc("GET /hub/v1/admin/clearing/{month}", h.admin(func(r *http.Request) (any, error) {
		return h.Statement(r.Context(), r.PathValue("month"))
	}))
	mux.HandleFunc("POST /hub/v1/admin/clearing/{month}", h.admin(func(r *http.Request) (any, error) {
		return h.Clear(r.Context(), r.PathValue("month"))
	}))
	return mux
}

// signed wraps a node message handler: the signature is checked first.
func (h *Hub) signed(f func(r *http.Request, from string, body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		from, body, err := h.verify.Verify(r)
		if err != nil {
			wire.Reply(w, nil, err)
			return
		}
		v, err := f(r, from, body)
		wire.Reply(w, v, err)
	}
}

// admin wraps an administrator endpoint.
func (h *Hub) admin(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.adminOK(r) {
			wire.Reply(w, nil, yibao.Errorf(yibao.CodeUnauthenticated, "the hub's administrator token is required (Authorization: Bearer …)"))
			return
		}
		v, err := f(r)
		wire.Reply(w, v, err)
	}
}
