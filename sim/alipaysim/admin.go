package alipaysim

import (
	"encoding/json"
	"net"
	"net/http"

	"yibao/sim"
)

// admin guards the simulator's own endpoints: unsigned, so loopback
// callers only (the demo, the CLI, tests).
func (s *Sim) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "the simulator's admin endpoints answer loopback callers only", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// getFaults: GET /sim/faults → the current sim.Faults.
func (s *Sim) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.Get())
}

// setFaults: POST /sim/faults with a sim.Faults JSON replaces the faults
// (an empty object clears them) and answers with them.
func (s *Sim) setFaults(w http.ResponseWriter, r *http.Request) {
	var f sim.Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error()})
		return
	}
	s.faults.Set(f)
	writeJSON(w, http.StatusOK, f)
}

type payerView struct {
	BuyerID     string `json:"buyer_id"`
	Balance     int64  `json:"balance"`      // fen
	BalanceYuan string `json:"balance_yuan"` // the same, in yuan
}

// getPayer: GET /sim/payers/{buyer_id} → {buyer_id, balance, balance_yuan}.
func (s *Sim) getPayer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("buyer_id")
	s.mu.Lock()
	p := s.payers[id]
	var bal int64
	if p != nil {
		bal = p.balance
	}
	s.mu.Unlock()
	if p == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no payer " + id})
		return
	}
	writeJSON(w, http.StatusOK, payerView{BuyerID: id, Balance: bal, BalanceYuan: yuan(bal)})
}

// setPayer: POST /sim/payers/{buyer_id} with {"balance": fen} creates the
// payer or sets the balance.
func (s *Sim) setPayer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("buyer_id")
	var in struct {
		Balance *int64 `json:"balance"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil || in.Balance == nil || *in.Balance < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"balance": fen ≥ 0}`})
		return
	}
	s.AddPayer(id, *in.Balance)
	writeJSON(w, http.StatusOK, payerView{BuyerID: id, Balance: *in.Balance, BalanceYuan: yuan(*in.Balance)})
}
