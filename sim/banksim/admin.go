package banksim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"yibao/credit/bankapi"
)

// about: GET / says what this is.
func (s *Sim) about(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "yibao bank simulator (not a real bank): bank %s speaking yibao's signed credit protocol (credit/bankapi) under /credit/; "+
		"simulator controls under /sim/ (loopback only): GET /sim/state, GET|POST /sim/faults, POST /sim/scores/{psn_ref}, "+
		"POST /sim/agreements/{agreement_no}/repay|limit|suspend|reinstate|close.\n", s.o.BankCode)
}

// admin wraps the simulator's own control endpoints: unsigned, for the
// demo and tests, and refused unless the request comes from loopback.
func (s *Sim) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, bankapi.Error{Code: "FORBIDDEN", Message: "the simulator's admin endpoints answer loopback only"})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, bankapi.Error{Code: bankapi.CodeInvalidRequest, Message: err.Error()})
		return false
	}
	return true
}

// getState: GET /sim/state → State.
func (s *Sim) getState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.State())
}

// getFaults: GET /sim/faults → Faults.
func (s *Sim) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// setFaults: POST /sim/faults with a Faults body replaces the faults (an
// empty object clears them) → the faults now in force.
func (s *Sim) setFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !readJSON(w, r, &f) {
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, s.Faults())
}

// setScore: POST /sim/scores/{psn_ref} {"score": n}.
func (s *Sim) setScore(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Score *int `json:"score"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.Score == nil {
		writeJSON(w, http.StatusBadRequest, bankapi.Error{Code: bankapi.CodeInvalidRequest, Message: `the body must be {"score": n}`})
		return
	}
	ref := r.PathValue("psn_ref")
	s.SetScore(ref, *in.Score)
	writeJSON(w, http.StatusOK, map[string]any{"psn_ref": ref, "score": *in.Score, "limit_fen": BandLimit(*in.Score)})
}

// action: POST /sim/agreements/{agreement_no}/{action} carries out a bank
// action → {"agreement", "repayment"?, "delivered", "error"?}. The action
// stands even when its callback is not delivered (delivered false).
func (s *Sim) action(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AmountFen int64  `json:"amount_fen"`
		LimitFen  *int64 `json:"limit_fen"`
		Reason    string `json:"reason"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	no := r.PathValue("agreement_no")
	out := map[string]any{}
	var err error
	switch r.PathValue("action") {
	case "repay":
		var rp *bankapi.Repayment
		rp, err = s.RepayAtCounter(r.Context(), no, in.AmountFen)
		if rp != nil {
			out["repayment"] = rp
		}
	case "limit":
		if in.LimitFen == nil {
			writeJSON(w, http.StatusBadRequest, bankapi.Error{Code: bankapi.CodeInvalidRequest, Message: `the body must be {"limit_fen": n}`})
			return
		}
		err = s.ChangeLimit(r.Context(), no, *in.LimitFen)
	case "suspend":
		err = s.Suspend(r.Context(), no, in.Reason)
	case "reinstate":
		err = s.Reinstate(r.Context(), no)
	case "close":
		err = s.CloseAgreement(r.Context(), no, in.Reason)
	default:
		writeJSON(w, http.StatusNotFound, bankapi.Error{Code: bankapi.CodeNotFound, Message: "actions: repay, limit, suspend, reinstate, close"})
		return
	}
	switch {
	case err == nil || errors.Is(err, ErrNotDelivered):
	case errors.Is(err, ErrUnknownAgreement):
		writeJSON(w, http.StatusNotFound, bankapi.Error{Code: bankapi.CodeNotFound, Message: err.Error()})
		return
	case errors.Is(err, ErrAgreementClosed):
		writeJSON(w, http.StatusConflict, bankapi.Error{Code: "AGREEMENT_CLOSED", Message: err.Error()})
		return
	default:
		writeJSON(w, http.StatusBadRequest, bankapi.Error{Code: bankapi.CodeInvalidRequest, Message: err.Error()})
		return
	}
	out["agreement"], _ = s.Agreement(no)
	out["delivered"] = err == nil
	if err != nil {
		out["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}
