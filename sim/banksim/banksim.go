// Package banksim is a simulator of a bank's side of yibao's credit
// protocol (credit/bankapi), for tests and the demo — not a real bank.
// It grants credit lines from a simulated credit score, records the draws
// and repayments the platform notifies, answers daily settlement files
// with its own records and payouts, and initiates what a bank initiates
// (counter repayments, limit changes, suspension, reinstatement,
// closing) as signed callbacks to the platform's notify URL.
//
// Every request to the simulated bank must be signed with the platform's
// key (else 401 BAD_SIGNATURE, STALE_TIMESTAMP or REPLAYED) and every
// answer is signed with the bank's key, exactly as bankapi specifies; the
// simulator uses bankapi's own signing functions. Faults (see Faults) make
// it misbehave in the ways a platform must survive.
//
// The bank's state lives in memory, and in Options.StateFile if set, so
// that a restarted simulator still knows the agreements the platform
// has.
//
// Paths served:
//
//	POST /credit/applications                 ApplyRequest → Decision
//	GET  /credit/applications/{apply_id}      Decision
//	POST /credit/draws                        DrawNotice → accepted
//	POST /credit/repayments                   Repayment → accepted
//	POST /credit/status                       StatusReport → recorded
//	GET  /credit/agreements/{bank_agreement_id}  AgreementState
//	POST /credit/settlement-files             DayFile → DayReply
//	GET  /                                    what this is
//	GET  /sim/state                           admin: State (loopback only, unsigned)
//	GET|POST /sim/faults                      admin: the faults in force / replace them
//	POST /sim/scores/{psn_ref}                admin: {"score": n}
//	POST /sim/agreements/{agreement_no}/repay      admin: {"amount_fen": n} → counter repayment
//	POST /sim/agreements/{agreement_no}/limit      admin: {"limit_fen": n}
//	POST /sim/agreements/{agreement_no}/suspend    admin: {"reason": "..."}
//	POST /sim/agreements/{agreement_no}/reinstate  admin
//	POST /sim/agreements/{agreement_no}/close      admin: {"reason": "..."}
package banksim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"yibao/credit/bankapi"
	"yibao/gmcrypto"
)

// Defaults for the demo: the simulated bank's code and the key ids both
// sides use.
const (
	DefaultBankCode      = "yhbank"
	DefaultBankKeyID     = "yhbank-sim"
	DefaultPlatformKeyID = "yibao-platform"
)

// Options configure the simulated bank.
type Options struct {
	BankCode      string               // default DefaultBankCode
	BankKeyID     string               // default DefaultBankKeyID
	Key           *gmcrypto.PrivateKey // the bank's key: signs answers and callbacks
	PlatformKeyID string               // default DefaultPlatformKeyID
	PlatformKey   *gmcrypto.PublicKey  // verifies the platform's requests
	// CallbackURL is the platform's notify URL, e.g.
	// http://127.0.0.1:8080/api/v1/credit/notify/yhbank. Empty: bank
	// actions are carried out but not reported (they return an error
	// wrapping ErrNotDelivered and ErrNoCallbackURL).
	CallbackURL      string
	InterestFreeDays int          // default 10
	Client           *http.Client // sends callbacks; default a 10 s timeout
	// StateFile, if set, keeps the bank's state across restarts: it is
	// loaded when the bank is made (if it exists) and rewritten (mode
	// 0600, atomically) after every change. It holds the score
	// overrides, applications, agreements, draws, repayments, status
	// reports and settlement files received — not the faults, nor the
	// log of callbacks sent.
	StateFile string
}

// Errors of the bank-initiated actions.
var (
	ErrUnknownAgreement = errors.New("banksim: no such agreement")
	ErrAgreementClosed  = errors.New("banksim: the agreement is closed")
	// ErrNotDelivered: the action was carried out but its callback was
	// not delivered to the platform.
	ErrNotDelivered  = errors.New("banksim: the platform was not told")
	ErrNoCallbackURL = errors.New("banksim: no callback URL configured")
)

// chinaTime: settlement dates are days in UTC+8.
var chinaTime = time.FixedZone("CST", 8*3600)

// retryBackoff: the pauses between callback attempts (so 4 attempts).
var retryBackoff = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second}

// Sim is the simulated bank, an http.Handler. It is safe for concurrent use.
type Sim struct {
	o      Options
	mux    *http.ServeMux
	nonces bankapi.NonceCache
	client *http.Client

	fmu    sync.Mutex
	faults Faults

	mu            sync.Mutex
	scores        map[string]int
	apps          map[string]*application // by apply_id
	appOrder      []string
	agreements    map[string]*agreement // by bank_agreement_id
	byNo          map[string]string     // agreement_no → latest bank_agreement_id
	draws         []bankapi.DrawNotice
	drawIdx       map[string]int
	repays        []repayment
	repayIdx      map[string]int
	reports       []bankapi.StatusReport
	days          []bankapi.DayFile
	callbacks     []SentCallback
	firstHospital string

	done     chan struct{}
	stopOnce sync.Once
}

type application struct {
	req bankapi.ApplyRequest
	dec bankapi.Decision
}

type agreement struct {
	bankapi.AgreementState
	PsnRef  string
	ApplyID string
}

type repayment struct {
	bankapi.Repayment
	platform bool // reported by the platform (POST /credit/repayments), not the bank's own
}

// New returns a simulated bank: with the state in Options.StateFile if
// that exists, else with no agreements. If the state file is unusable,
// New logs why and returns an empty bank that does not save (so the file
// is left as it is); NewWithState and Start return that error instead.
func New(o Options) *Sim {
	s := newSim(o)
	if err := s.load(); err != nil {
		log.Printf("%v; this bank starts empty and will not save its state", err)
		s.o.StateFile = ""
	}
	return s
}

// newSim returns a simulated bank with no agreements.
func newSim(o Options) *Sim {
	if o.BankCode == "" {
		o.BankCode = DefaultBankCode
	}
	if o.BankKeyID == "" {
		o.BankKeyID = DefaultBankKeyID
	}
	if o.PlatformKeyID == "" {
		o.PlatformKeyID = DefaultPlatformKeyID
	}
	if o.InterestFreeDays <= 0 {
		o.InterestFreeDays = 10
	}
	s := &Sim{
		o:          o,
		client:     o.Client,
		scores:     map[string]int{},
		apps:       map[string]*application{},
		agreements: map[string]*agreement{},
		byNo:       map[string]string{},
		drawIdx:    map[string]int{},
		repayIdx:   map[string]int{},
		done:       make(chan struct{}),
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	s.routes()
	return s
}

// ServeHTTP serves the bank's API and the simulator's admin endpoints.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// stop releases handlers held by a timeout fault.
func (s *Sim) stop() { s.stopOnce.Do(func() { close(s.done) }) }

// Score is the simulated credit score of a person: 560 plus the first two
// bytes of SM3(psnRef), as a big-endian uint16, modulo 240 (560–799).
func Score(psnRef string) int {
	h := gmcrypto.SM3([]byte(psnRef))
	return 560 + int(binary.BigEndian.Uint16(h[:2])%240)
}

// SetScore overrides a person's score.
func (s *Sim) SetScore(psnRef string, score int) {
	s.mu.Lock()
	s.scores[psnRef] = score
	s.saveLocked()
	s.mu.Unlock()
}

// ScoreOf is the score the bank uses for a person: the override if any,
// else Score.
func (s *Sim) ScoreOf(psnRef string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scoreLocked(psnRef)
}

func (s *Sim) scoreLocked(psnRef string) int {
	if sc, ok := s.scores[psnRef]; ok {
		return sc
	}
	return Score(psnRef)
}

// BandLimit is the credit line for a score: none below 600, then 500 yuan
// (600–649), 2,000 yuan (650–699), 5,000 yuan (700 and over), in fen.
func BandLimit(score int) int64 {
	switch {
	case score >= 700:
		return 500000
	case score >= 650:
		return 200000
	case score >= 600:
		return 50000
	}
	return 0
}

// Keys is the simulated bank's key material.
type Keys struct {
	Bank *gmcrypto.PrivateKey
}

// LoadKeys reads the bank's SM2 key from dir/bank.pem, making it (mode
// 0600) if missing, and writes its public half to dir/bank-public.pem
// for the platform's configuration.
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "bank.pem")
	var k *gmcrypto.PrivateKey
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if k, err = gmcrypto.ParsePrivateKeyPEM(b); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if k, err = gmcrypto.GenerateKey(nil); err != nil {
			return nil, err
		}
		pemb, err := gmcrypto.MarshalPrivateKeyPEM(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pemb, 0o600); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	pub, err := gmcrypto.MarshalPublicKeyPEM(k.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bank-public.pem"), pub, 0o644); err != nil {
		return nil, err
	}
	return &Keys{Bank: k}, nil
}

// Server is the simulated bank on its own loopback HTTP server.
type Server struct {
	URL string
	Sim *Sim
	srv *http.Server
}

// Start serves a simulated bank on addr (e.g. "127.0.0.1:0"), with the
// state in Options.StateFile if set (an unusable file is an error
// wrapping ErrBadStateFile).
func Start(o Options, addr string) (*Server, error) {
	sim, err := NewWithState(o)
	if err != nil {
		return nil, fmt.Errorf("bank simulator: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bank simulator: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Sim: sim}
	s.srv = &http.Server{Handler: s.Sim, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	s.Sim.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// newID is prefix plus 16 random upper-case hex digits.
func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + strings.ToUpper(hex.EncodeToString(b))
}

// agreementID derives "BKA" + 12 digits from the bank and the application,
// so a restarted simulator gives a re-sent application the same id. Callers
// hold s.mu.
func (s *Sim) agreementID(applyID string) string {
	h := gmcrypto.SM3([]byte(s.o.BankCode + "|" + applyID))
	n := binary.BigEndian.Uint64(h[:8]) % 1_000_000_000_000
	for {
		id := fmt.Sprintf("BKA%012d", n)
		if s.agreements[id] == nil {
			return id
		}
		n = (n + 1) % 1_000_000_000_000
	}
}

// SetCallbackURL sets where the bank's callbacks go (an in-process
// platform knows its own address only once it listens).
func (s *Sim) SetCallbackURL(url string) {
	s.mu.Lock()
	s.o.CallbackURL = url
	s.mu.Unlock()
}
