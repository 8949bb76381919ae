// Package alipaysim is a simulator of the Alipay OpenAPI gateway, for
// tests and the demo: this project cannot reach Alipay. It implements the
// server side of the methods the adapter in pay/channel/alipay calls, with
// the real protocol's signatures, so that adapter (and the SDK under it,
// github.com/smartwalle/alipay/v3) runs against it unchanged:
//
//   - every call is POST {base}/gateway.do with the common parameters
//     (app_id, method, format, charset, sign_type=RSA2, timestamp,
//     version, notify_url, biz_content) in the form body or the query,
//     signed with the app key: SHA256withRSA over the non-empty parameters
//     except sign, sorted by name, joined as k=v&…; a bad or missing
//     signature is code 40002 isv.invalid-signature;
//   - every answer is {"<method_with_underscores>_response": {code, msg,
//     sub_code, sub_msg, …}, "sign": "…"}, the sign being SHA256withRSA
//     with the Alipay key over the exact bytes of the response object;
//   - asynchronous notifications are form POSTs to the call's notify_url,
//     signed with the Alipay key over all parameters but sign and
//     sign_type, sent again on Alipay's schedule until the answer is the
//     body "success".
//
// The simulator keeps payers (buyer_id 2088… → balance in fen),
// withholding agreements, trades and refunds in memory, records every
// debit and credit, and honours the faults of sim.Faults. It is an
// independent implementation of the protocol: it does not import the
// adapter.
//
// Mount it at the adapter's BaseURL with the prefix stripped, e.g.
//
//	mux.Handle("/alipay/", http.StripPrefix("/alipay", s))
//
// Paths, relative to the mount point:
//
//	POST     /gateway.do               the OpenAPI gateway (methods below)
//	GET      /bill/download?token=     a bill archive (unsigned, as at Alipay)
//	GET|POST /pay/{out_trade_no}       the simulated payer's confirmation page
//	GET|POST /sim/faults               admin: sim.Faults as JSON (loopback only, unsigned)
//	GET|POST /sim/payers/{buyer_id}    admin: a payer's balance (loopback only, unsigned)
//
// Methods: alipay.trade.pay (商户代扣 only: GENERAL_WITHHOLDING with
// agreement_params), alipay.trade.create, alipay.trade.query,
// alipay.trade.close, alipay.trade.refund,
// alipay.trade.fastpay.refund.query, alipay.user.agreement.page.sign (as a
// server-side stand-in, see signAgreement), alipay.user.agreement.query,
// alipay.user.agreement.unsign,
// alipay.data.dataservice.bill.downloadurl.query.
package alipaysim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"sync"
	"time"

	"yibao/sim"
)

// chinaTime is Alipay's zone: timestamps, bill dates (UTC+8).
var chinaTime = time.FixedZone("CST", 8*3600)

// timeLayout is Alipay's "yyyy-MM-dd HH:mm:ss".
const timeLayout = "2006-01-02 15:04:05"

// merchantPID is the merchant's Alipay partner id (seller_id), as it
// appears in notifications and bill file names.
const merchantPID = "2088621000000001"

// Config configures the simulator. The keys are the halves of the pairs
// whose other halves the adapter holds.
type Config struct {
	AppID        string
	AppPublicKey *rsa.PublicKey  // verifies requests
	AlipayKey    *rsa.PrivateKey // signs answers and notifications

	// Now is the simulator's business clock: payment and refund times,
	// bill days, expiry. Default time.Now.
	Now func() time.Time
	// Client sends notifications. Default: a client with a 10 s timeout.
	Client *http.Client
	// NotifySchedule: the delays between notification attempts after the
	// first. Default Alipay's 4m,10m,10m,1h,2h,6h,15h.
	NotifySchedule []time.Duration
}

// DefaultNotifySchedule is Alipay's documented notification retry
// schedule (eight attempts within 25 hours).
var DefaultNotifySchedule = []time.Duration{
	4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour,
}

// Sim is the simulated Alipay gateway. It is safe for concurrent use.
type Sim struct {
	cfg    Config
	mux    *http.ServeMux
	faults sim.FaultBox
	client *http.Client

	mu         sync.Mutex
	seq        int64
	payers     map[string]*payer
	agreements map[string]*agreement // by agreement_no
	byExternal map[string]*agreement // by external_agreement_no
	trades     map[string]*trade     // by out_trade_no
	byTradeNo  map[string]*trade
	refunds    map[refundKey]*refund
	ledger     []Entry
	deliveries []Delivery
	bills      map[string][]byte // bill archives by download token

	// Background notification senders.
	bgMu   sync.Mutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type payer struct{ balance int64 }

// Entry is one movement of a payer's money: a debit (Amount < 0, a
// payment) or a credit (Amount > 0, a refund).
type Entry struct {
	BuyerID      string    `json:"buyer_id"`
	OutTradeNo   string    `json:"out_trade_no"`
	OutRequestNo string    `json:"out_request_no,omitempty"` // refunds
	Amount       int64     `json:"amount"`                   // fen
	At           time.Time `json:"at"`
}

// Delivery is one attempt to deliver a notification.
type Delivery struct {
	NotifyID   string    `json:"notify_id"`
	NotifyType string    `json:"notify_type"`
	URL        string    `json:"url"`
	Acked      bool      `json:"acked"` // the answer was "success"
	At         time.Time `json:"at"`
}

// New returns a simulator with no payers. Close it to stop the
// notification senders.
func New(cfg Config) *Sim {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NotifySchedule == nil {
		cfg.NotifySchedule = DefaultNotifySchedule
	}
	s := &Sim{
		cfg:        cfg,
		client:     cfg.Client,
		payers:     map[string]*payer{},
		agreements: map[string]*agreement{},
		byExternal: map[string]*agreement{},
		trades:     map[string]*trade{},
		byTradeNo:  map[string]*trade{},
		refunds:    map[refundKey]*refund{},
		bills:      map[string][]byte{},
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.routes()
	return s
}

func (s *Sim) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /gateway.do", s.gateway)
	m.HandleFunc("GET /bill/download", s.billDownload)
	m.HandleFunc("GET /pay/{no}", s.payPage)
	m.HandleFunc("POST /pay/{no}", s.payPage)
	m.HandleFunc("GET /sim/faults", s.admin(s.getFaults))
	m.HandleFunc("POST /sim/faults", s.admin(s.setFaults))
	m.HandleFunc("GET /sim/payers/{buyer_id}", s.admin(s.getPayer))
	m.HandleFunc("POST /sim/payers/{buyer_id}", s.admin(s.setPayer))
	s.mux = m
}

// ServeHTTP serves the simulated gateway (see the package comment for
// paths).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Faults is the box of injected faults.
func (s *Sim) Faults() *sim.FaultBox { return &s.faults }

// Close stops the notification senders (pending retries are dropped) and
// waits for them. Calls hanging on TimeoutNext are released.
func (s *Sim) Close() {
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// AddPayer creates a payer, or sets an existing payer's balance (fen).
func (s *Sim) AddPayer(buyerID string, balance int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payers[buyerID]; p != nil {
		p.balance = balance
		return
	}
	s.payers[buyerID] = &payer{balance: balance}
}

// Balance returns a payer's balance in fen (0 for an unknown payer).
func (s *Sim) Balance(buyerID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payers[buyerID]; p != nil {
		return p.balance
	}
	return 0
}

// Debits returns how many times a payer was actually charged for the
// trade: the proof that a re-sent charge took the money once.
func (s *Sim) Debits(outTradeNo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.ledger {
		if e.OutTradeNo == outTradeNo && e.OutRequestNo == "" && e.Amount < 0 {
			n++
		}
	}
	return n
}

// Ledger returns a copy of a payer's movements, oldest first ("" for all
// payers).
func (s *Sim) Ledger(buyerID string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, e := range s.ledger {
		if buyerID == "" || e.BuyerID == buyerID {
			out = append(out, e)
		}
	}
	return out
}

// TradeStatus returns a trade's Alipay status (WAIT_BUYER_PAY,
// TRADE_SUCCESS, TRADE_CLOSED), or "" for an unknown out_trade_no.
func (s *Sim) TradeStatus(outTradeNo string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.trades[outTradeNo]; t != nil {
		return t.status
	}
	return ""
}

// Deliveries returns a copy of every notification delivery attempt so
// far, oldest first.
func (s *Sim) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// GenerateKeys makes an app and an Alipay RSA key pair (2048 bits) for
// tests and the demo.
func GenerateKeys() (app, alipay *rsa.PrivateKey, err error) {
	if app, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, nil, err
	}
	if alipay, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, nil, err
	}
	return app, alipay, nil
}

func (s *Sim) now() time.Time { return s.cfg.Now() }
