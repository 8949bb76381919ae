package wechatsim

import (
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net"
	"net/http"

	"yibao/sim"
)

// payPageTmpl is the simulated payer's confirmation page (the stand-in
// for the WeChat app's payment sheet).
var payPageTmpl = template.Must(template.New("pay").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>微信支付（模拟器）</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}
.amt{font-size:2em;margin:.5em 0}.note{color:#888;font-size:.85em}button{font-size:1.1em;padding:.5em 2em}
.err{color:#c00}.ok{color:#080}</style></head><body>
<p class="note">这是微信支付模拟器，不是真实的微信支付。</p>
<h1>{{.Description}}</h1>
<p class="amt">¥{{.Yuan}}</p>
<p>商户订单号 {{.OutTradeNo}}<br>付款人 {{.OpenID}}<br>余额 ¥{{.Balance}}<br>状态 {{.State}}</p>
{{if .Message}}<p class="{{if .Failed}}err{{else}}ok{{end}}">{{.Message}}</p>{{end}}
{{if .CanPay}}<form method="post"><button type="submit">确认支付</button></form>{{end}}
</body></html>`))

// payPage: GET /pay/{prepay_id} shows the order; POST confirms it, as
// ConfirmPrepay does.
func (s *Sim) payPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	status := http.StatusOK
	var msg string
	failed := false
	if r.Method == http.MethodPost {
		if err := s.ConfirmPrepay(id); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Code == "RESOURCE_NOT_EXISTS" {
				http.Error(w, "no such prepay_id", http.StatusNotFound)
				return
			}
			msg, failed, status = "支付失败: "+err.Error(), true, http.StatusConflict
		} else {
			msg = "支付成功"
		}
	}
	s.mu.Lock()
	o := s.byPrepay[id]
	if o == nil {
		s.mu.Unlock()
		http.Error(w, "no such prepay_id", http.StatusNotFound)
		return
	}
	bal, _ := s.balanceOf(o.OpenID)
	data := map[string]any{
		"Description": o.Description, "Yuan": yuan(o.Amount), "OutTradeNo": o.OutTradeNo, "OpenID": o.OpenID,
		"Balance": yuan(bal), "State": o.State, "Message": msg, "Failed": failed, "CanPay": o.State == stNotPay,
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = payPageTmpl.Execute(w, data)
}

// admin wraps the simulator's own control endpoints: unsigned, for the
// demo and CLI, and refused unless the request comes from loopback.
func (s *Sim) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, apiError{"FORBIDDEN", "the simulator's admin endpoints answer loopback only"})
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// getFaults: GET /sim/faults → the current sim.Faults.
func (s *Sim) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.Get())
}

// setFaults: POST /sim/faults with a sim.Faults body replaces the faults
// (an empty object clears them) → the faults now in force.
func (s *Sim) setFaults(w http.ResponseWriter, r *http.Request) {
	var f sim.Faults
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"PARAM_ERROR", "the body must be a sim.Faults JSON object"})
		return
	}
	s.faults.Set(f)
	writeJSON(w, http.StatusOK, s.faults.Get())
}

// payerView is the admin view of a payer.
type payerView struct {
	OpenID  string  `json:"openid"`
	Balance int64   `json:"balance"` // fen
	Debits  []Entry `json:"debits"`
	Credits []Entry `json:"credits"`
}

// getPayer: GET /sim/payers/{openid} → {openid, balance, debits, credits}.
func (s *Sim) getPayer(w http.ResponseWriter, r *http.Request) {
	openid := r.PathValue("openid")
	s.mu.Lock()
	_, known := s.balanceOf(openid)
	s.mu.Unlock()
	if !known {
		writeJSON(w, http.StatusNotFound, apiError{"RESOURCE_NOT_EXISTS", "no such payer"})
		return
	}
	writeJSON(w, http.StatusOK, s.payerView(openid))
}

// setPayer: POST /sim/payers/{openid} {"balance": fen} creates the payer
// or sets the balance → the payer.
func (s *Sim) setPayer(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Balance *int64 `json:"balance"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&in); err != nil || in.Balance == nil {
		writeJSON(w, http.StatusBadRequest, apiError{"PARAM_ERROR", `the body must be {"balance": fen}`})
		return
	}
	openid := r.PathValue("openid")
	s.AddPayer(openid, *in.Balance)
	writeJSON(w, http.StatusOK, s.payerView(openid))
}

func (s *Sim) payerView(openid string) payerView {
	v := payerView{OpenID: openid, Balance: s.Balance(openid), Debits: []Entry{}, Credits: []Entry{}}
	for _, e := range s.Ledger(openid) {
		if e.Amount < 0 {
			v.Debits = append(v.Debits, e)
		} else {
			v.Credits = append(v.Credits, e)
		}
	}
	return v
}
