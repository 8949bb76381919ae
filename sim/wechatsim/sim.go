// Package wechatsim is a simulator of the WeChat Pay API v3 server, for
// tests and the demo: this project cannot reach WeChat Pay. It implements
// the server side of the endpoints the adapter in pay/channel/wechat
// uses, with the real protocol's signatures, so that adapter (and the
// official SDK under it) runs against it unchanged:
//
//   - every request must carry a valid Authorization header
//     (WECHATPAY2-SHA256-RSA2048, signed with the merchant key over
//     "METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n"), else 401 SIGN_ERROR;
//   - every answer (except the bill file, as at WeChat) is signed with the
//     platform key in Wechatpay-Serial/-Timestamp/-Nonce/-Signature;
//   - callbacks are signed the same way and carry an AEAD_AES_256_GCM
//     resource encrypted with the API v3 key, retried on WeChat's schedule
//     until answered with 2xx.
//
// The simulator keeps payers (openid → balance in fen), withholding
// contracts, orders and refunds in memory, records every debit and
// credit, and honours the faults of sim.Faults. It is an independent
// implementation of the protocol: it does not import the adapter.
//
// Mount it at the adapter's BaseURL with the prefix stripped, e.g.
//
//	mux.Handle("/sim/wechat/", http.StripPrefix("/sim/wechat", s))
//
// because the request signature covers the path as WeChat sees it
// (/v3/...). Paths served, relative to the mount point:
//
//	POST /v3/pay/transactions/jsapi                     JSAPI prepay → {prepay_id}
//	GET  /v3/pay/transactions/out-trade-no/{no}?mchid=  query (also /id/{transaction_id})
//	POST /v3/pay/transactions/out-trade-no/{no}/close   close
//	POST /v3/papay/pay-transactions/apply               withholding charge → 204
//	POST /v3/papay/contracts                            sign a contract (simulator stand-in)
//	POST /v3/papay/contracts/{contract_id}/terminate    terminate (simulator stand-in)
//	POST /v3/refund/domestic/refunds                    refund
//	GET  /v3/refund/domestic/refunds/{out_refund_no}    query a refund
//	GET  /v3/bill/tradebill?bill_date=&bill_type=       trade bill → {download_url, hash_type, hash_value}
//	GET  /v3/billdownload/file?token=                   the bill file (unsigned answer)
//	GET|POST /pay/{prepay_id}                           the payer's confirmation page
//	GET|POST /sim/faults                                admin (loopback only, unsigned)
//	GET|POST /sim/payers/{openid}                       admin (loopback only, unsigned)
package wechatsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"sync"
	"time"

	"yibao/sim"
)

// Config configures the simulator. The keys are the same pairs the
// adapter holds the other halves of.
type Config struct {
	MchID          string
	AppID          string
	MerchantSerial string         // the serial_no requests must name
	MerchantKey    *rsa.PublicKey // verifies requests
	PlatformSerial string         // sent as Wechatpay-Serial
	PlatformKey    *rsa.PrivateKey
	APIv3Key       string // 32 bytes: encrypts callback resources

	// Now is the simulator's business clock: success times, refund
	// times, bill dates, expiry. Default time.Now. Signature timestamps
	// always use the wall clock, as the SDK checks them against its own.
	Now func() time.Time
	// Client sends callbacks. Default: a client with a 10 s timeout.
	Client *http.Client
	// NotifySchedule: the delays between callback attempts after the
	// first. Default WeChat's 15s,15s,30s,3m,10m,20m,30m,30m,30m,60m,3h,3h,3h,6h,6h.
	NotifySchedule []time.Duration
}

// DefaultNotifySchedule is WeChat's documented callback retry schedule.
var DefaultNotifySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 60 * time.Minute,
	3 * time.Hour, 3 * time.Hour, 3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// Sim is the simulated WeChat Pay server. It is safe for concurrent use.
type Sim struct {
	cfg    Config
	mux    *http.ServeMux
	faults sim.FaultBox
	client *http.Client

	mu        sync.Mutex
	seq       int64
	payers    map[string]*payer
	contracts map[string]*contract // by contract_id
	byCode    map[string]*contract // by out_contract_code
	orders    map[string]*order    // by out_trade_no
	byPrepay  map[string]*order
	byTx      map[string]*order
	refunds   map[string]*refund // by out_refund_no
	ledger    []Entry
	bills     map[string]billFile // by download token

	// Background callback senders.
	bgMu   sync.Mutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type payer struct{ balance int64 }

// Entry is one movement of a payer's money: a debit (Amount < 0, a
// charge or payment) or a credit (Amount > 0, a refund).
type Entry struct {
	OpenID      string    `json:"openid"`
	OutTradeNo  string    `json:"out_trade_no"`
	OutRefundNo string    `json:"out_refund_no,omitempty"`
	Amount      int64     `json:"amount"` // fen
	At          time.Time `json:"at"`
}

// New returns a simulator with no payers. Close it to stop the callback
// senders.
func New(cfg Config) *Sim {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NotifySchedule == nil {
		cfg.NotifySchedule = DefaultNotifySchedule
	}
	s := &Sim{
		cfg:       cfg,
		client:    cfg.Client,
		payers:    map[string]*payer{},
		contracts: map[string]*contract{},
		byCode:    map[string]*contract{},
		orders:    map[string]*order{},
		byPrepay:  map[string]*order{},
		byTx:      map[string]*order{},
		refunds:   map[string]*refund{},
		bills:     map[string]billFile{},
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
	m.HandleFunc("POST /v3/pay/transactions/jsapi", s.v3(s.prepay))
	m.HandleFunc("GET /v3/pay/transactions/out-trade-no/{no}", s.v3(s.queryOrder))
	m.HandleFunc("GET /v3/pay/transactions/id/{id}", s.v3(s.queryOrder))
	m.HandleFunc("POST /v3/pay/transactions/out-trade-no/{no}/close", s.v3(s.closeOrder))
	m.HandleFunc("POST /v3/papay/pay-transactions/apply", s.v3(s.apply))
	m.HandleFunc("POST /v3/papay/contracts", s.v3(s.signContract))
	m.HandleFunc("POST /v3/papay/contracts/{id}/terminate", s.v3(s.terminateContract))
	m.HandleFunc("POST /v3/refund/domestic/refunds", s.v3(s.createRefund))
	m.HandleFunc("GET /v3/refund/domestic/refunds/{no}", s.v3(s.queryRefund))
	m.HandleFunc("GET /v3/bill/tradebill", s.v3(s.tradeBill))
	m.HandleFunc("GET /v3/billdownload/file", s.billDownload)
	m.HandleFunc("/v3/", s.v3(func(*http.Request, []byte) reply {
		return fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "no such API in the simulator")
	}))
	m.HandleFunc("GET /pay/{id}", s.payPage)
	m.HandleFunc("POST /pay/{id}", s.payPage)
	m.HandleFunc("GET /sim/faults", s.admin(s.getFaults))
	m.HandleFunc("POST /sim/faults", s.admin(s.setFaults))
	m.HandleFunc("GET /sim/payers/{openid}", s.admin(s.getPayer))
	m.HandleFunc("POST /sim/payers/{openid}", s.admin(s.setPayer))
	s.mux = m
}

// ServeHTTP serves the simulated API (see the package comment for paths).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Faults is the box of injected faults.
func (s *Sim) Faults() *sim.FaultBox { return &s.faults }

// Close stops the callback senders (pending retries are dropped) and
// waits for them to finish. Requests still hanging on TimeoutNext are
// released.
func (s *Sim) Close() {
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// AddPayer creates a payer, or sets an existing payer's balance (fen).
func (s *Sim) AddPayer(openid string, balance int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payers[openid]; p != nil {
		p.balance = balance
		return
	}
	s.payers[openid] = &payer{balance: balance}
}

// Balance returns a payer's balance in fen (0 for an unknown payer).
func (s *Sim) Balance(openid string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payers[openid]; p != nil {
		return p.balance
	}
	return 0
}

// Debits returns how many times a payer was actually charged for the
// order: the proof that a retried charge took the money once.
func (s *Sim) Debits(outTradeNo string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.ledger {
		if e.OutTradeNo == outTradeNo && e.OutRefundNo == "" && e.Amount < 0 {
			n++
		}
	}
	return n
}

// Ledger returns a copy of a payer's movements, oldest first ("" for all payers).
func (s *Sim) Ledger(openid string) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, e := range s.ledger {
		if openid == "" || e.OpenID == openid {
			out = append(out, e)
		}
	}
	return out
}

// GenerateKeys makes a merchant and a platform RSA key pair (2048 bits)
// for tests and the demo.
func GenerateKeys() (merchant, platform *rsa.PrivateKey, err error) {
	if merchant, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, nil, err
	}
	if platform, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, nil, err
	}
	return merchant, platform, nil
}

func (s *Sim) now() time.Time { return s.cfg.Now() }
