// Package loadgen is a load-generating HIS client. It talks to a running
// platform only over HTTP, as hospitals and patients' phones do:
// Setup provisions what the load needs through the API and the seeded
// demo data (the demo hospitals' signing keys, persons with an
// e-certificate bound to a device whose key stays here, credit lines),
// and Run drives complete one-code outpatient transactions from many
// concurrent clients — mint a code on the phone, resolve it, open the
// visit, upload the fee lines, pay — each call with its own idempotency
// key, recording a history of every call (invoke, then ok, fail or info)
// as docs/reliability.md and the reliability reference's §8.1 describe.
package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/credit"
	"yibao/demo"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/sim/banksim"
)

// Config says where the platform is and what load to put on it.
type Config struct {
	URL     string // the platform, e.g. http://127.0.0.1:8080
	Clients int    // concurrent HIS clients (64)
	Lines   int    // fee lines per bill (20)
	// Persons caps the demo persons used (0: every insured person of
	// 370100 with a phone); ExtraPersons are registered first through a
	// CSV import (employees of 370100 without personal-account money).
	Persons      int
	ExtraPersons int
	// CreditPersons get a credit line at the simulated bank in Setup;
	// CreditFraction of their bills are paid on credit (the rest at the
	// counter). A refused credit payment is paid at the counter instead.
	CreditPersons  int
	CreditFraction float64
	Timeout        time.Duration // one HTTP call (10 s)
	// Retry retries a call whose outcome is unknown (info) with the same
	// idempotency key, backing off, for up to RetryFor (crash tests).
	Retry    bool
	RetryFor time.Duration
	// Admin and AdminPassword log in to read the demo SMS outbox and
	// import persons (admin / admin123).
	Admin, AdminPassword string
	Seed                 uint64
	RunID                string // prefix of every idempotency key (random if empty)
}

func (c *Config) defaults() {
	if c.Clients <= 0 {
		c.Clients = 64
	}
	if c.Lines <= 0 {
		c.Lines = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 60 * time.Second
	}
	if c.Admin == "" {
		c.Admin, c.AdminPassword = "admin", "admin123"
	}
	if c.RunID == "" {
		b := make([]byte, 4)
		rand.Read(b)
		c.RunID = "lg" + hex.EncodeToString(b)
	}
	c.URL = strings.TrimSuffix(c.URL, "/")
}

type hospital struct {
	code   string
	signer *auth.Signer
}

type person struct {
	psn      string
	dev      *code.Device
	step     int
	counter  atomic.Uint32
	credit   bool
	hospital int // the person's own hospital (bills elsewhere the same day would all be reviewed against each other)
}

func (p *person) mint() (string, error) {
	return p.dev.Generate(time.Now(), p.step, uint16(p.counter.Add(1)))
}

type item struct {
	code string
	cap  int64 // fen; 0 = none
}

// Fleet is a provisioned set of HIS clients.
type Fleet struct {
	cfg       Config
	hc        *http.Client
	token     string // the administrator's session
	hospitals []*hospital
	persons   []*person
	items     []item
	run       atomic.Int64 // runs so far (keys stay unique across runs)
}

// Persons and Hospitals say what Setup provisioned.
func (f *Fleet) Persons() int   { return len(f.persons) }
func (f *Fleet) Hospitals() int { return len(f.hospitals) }

// CreditPersons is how many persons have an active credit line.
func (f *Fleet) CreditPersons() int {
	n := 0
	for _, p := range f.persons {
		if p.credit {
			n++
		}
	}
	return n
}

// KeyIDs returns the API key of every hospital the fleet signs as.
func (f *Fleet) KeyIDs() []string {
	var out []string
	for _, h := range f.hospitals {
		out = append(out, h.signer.KeyID)
	}
	return out
}

// Setup provisions the fleet against a platform seeded with the demo.
// progress, if not nil, gets a line now and then.
func Setup(ctx context.Context, cfg Config, progress io.Writer) (*Fleet, error) {
	cfg.defaults()
	if progress == nil {
		progress = io.Discard
	}
	tr := &http.Transport{MaxIdleConns: 4 * cfg.Clients, MaxIdleConnsPerHost: 4 * cfg.Clients, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	f := &Fleet{cfg: cfg, hc: &http.Client{Transport: tr}}
	d := demo.Build()
	today := yibao.DateOf(time.Now())

	// The hospitals of 济南 and their demo keys (the secrets are derived
	// from public seeds: demo data only).
	for _, in := range d.Institutions {
		if in.Kind != yibao.KindHospital || in.Admdvs != "370100" {
			continue
		}
		for _, k := range d.APIKeys {
			if k.FixmedinsCode == in.Code && k.Alg == auth.AlgHMACSM3 {
				f.hospitals = append(f.hospitals, &hospital{code: in.Code, signer: &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}})
			}
		}
	}
	// Current drugs of class 甲 and 乙 for the fee lines.
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && (it.Class == "A" || it.Class == "B") && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) &&
			it.Code != "XA10BJL366B002010181708" { // the demo's diagnosis-restricted drug
			var c int64
			if it.PriceCap != nil {
				c = int64(*it.PriceCap)
			}
			f.items = append(f.items, item{code: it.Code, cap: c})
		}
	}
	if len(f.hospitals) == 0 || len(f.items) < cfg.Lines {
		return nil, errors.New("loadgen: the demo data has no 370100 hospital keys or too few current drugs")
	}

	var err error
	if f.token, err = f.login(ctx, cfg.Admin, cfg.AdminPassword); err != nil {
		return nil, err
	}
	// Who: the demo's insured of 济南 with a phone (for the activation
	// code), except the one person the simulated bank declines.
	type who struct{ psn, id, name string }
	var people []who
	active := map[string]bool{}
	for _, c := range d.Coverages {
		if c.Admdvs == "370100" && c.EndDate == "" && (c.Insutype == "310" || c.Insutype == "390") {
			active[c.PsnNo] = true
		}
	}
	for i, p := range d.Persons {
		if active[p.PsnNo] && p.Phone != "" && i != len(d.Persons)-1 {
			people = append(people, who{p.PsnNo, p.IDNumber, p.Name})
		}
	}
	if cfg.Persons > 0 && len(people) > cfg.Persons {
		people = people[:cfg.Persons]
	}
	if cfg.ExtraPersons > 0 {
		extra := extraPersons(cfg.ExtraPersons, cfg.Seed)
		if err := f.importPersons(ctx, extra); err != nil {
			return nil, err
		}
		for _, p := range extra {
			people = append(people, who{p[0], p[1], p[2]})
		}
		fmt.Fprintf(progress, "imported %d extra persons\n", len(extra))
	}
	// Each person activates the e-certificate in the official app: the
	// device key is made here and never leaves; the one-time code is read
	// from the demo's SMS outbox. The first CreditPersons also open a
	// credit line at the simulated bank.
	for i, w := range people {
		p, err := f.activate(ctx, w.psn, w.id, w.name, i < cfg.CreditPersons)
		if err != nil {
			return nil, fmt.Errorf("loadgen: activating %s: %w", w.psn, err)
		}
		p.hospital = i % len(f.hospitals)
		f.persons = append(f.persons, p)
		if (i+1)%200 == 0 {
			fmt.Fprintf(progress, "activated %d of %d e-certificates\n", i+1, len(people))
		}
	}
	return f, nil
}

// extraPersons makes n employees of 济南 with valid ID numbers and
// phones: psn_no, id_number, name, phone.
func extraPersons(n int, seed uint64) [][4]string {
	r := mrand.New(mrand.NewPCG(seed, 7))
	given := []rune("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国")
	out := make([][4]string, 0, n)
	for i := range n {
		body := fmt.Sprintf("370102%04d%02d%02d%03d", 1960+r.IntN(40), 1+r.IntN(12), 1+r.IntN(28), i%1000)
		id := body + string(yibao.IDCheckChar(body))
		name := "压测" + string(given[r.IntN(len(given))]) + string(given[r.IntN(len(given))])
		out = append(out, [4]string{fmt.Sprintf("370199%014d", i+1), id, name, fmt.Sprintf("199%08d", i+1)})
	}
	return out
}

func (f *Fleet) importPersons(ctx context.Context, ps [][4]string) error {
	var b bytes.Buffer
	b.WriteString("psn_no,id_number,name,phone,category,admdvs,insutype,start_date,end_date\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "%s,%s,%s,%s,active,370100,310,2025-01-01,\n", p[0], p[1], p[2], p[3])
	}
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Errors []any  `json:"errors"`
	}
	if err := f.admin(ctx, "POST", "/api/v1/imports?kind=persons", "text/csv", b.Bytes(), &job); err != nil {
		return fmt.Errorf("loadgen: importing persons: %w", err)
	}
	for job.Status == "running" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if err := f.admin(ctx, "GET", "/api/v1/imports/"+job.ID, "", nil, &job); err != nil {
			return err
		}
	}
	if job.Status != "succeeded" {
		return fmt.Errorf("loadgen: the person import %s: %v", job.Status, job.Errors)
	}
	return nil
}

var otpRe = regexp.MustCompile(`验证码 ([0-9]{6})`)

func (f *Fleet) activate(ctx context.Context, psn, id, name string, withCredit bool) (*person, error) {
	var act struct {
		ActivationID string `json:"activation_id"`
	}
	if _, err := f.app(ctx, "", "/app/api/activate", map[string]string{"id_number": id, "name": name}, &act); err != nil {
		return nil, err
	}
	var sms struct {
		Items []struct {
			Text string `json:"text"`
		} `json:"items"`
	}
	if err := f.admin(ctx, "GET", "/api/v1/ecert/dev/sms?limit=1", "", nil, &sms); err != nil {
		return nil, err
	}
	if len(sms.Items) == 0 || otpRe.FindStringSubmatch(sms.Items[0].Text) == nil {
		return nil, errors.New("no one-time code in the SMS outbox")
	}
	otp := otpRe.FindStringSubmatch(sms.Items[0].Text)[1]
	key, err := gmcrypto.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	var b struct {
		Credential  string `json:"credential"`
		StepSeconds int    `json:"step_seconds"`
	}
	cookie, err := f.app(ctx, "", "/app/api/confirm", map[string]string{"activation_id": act.ActivationID, "otp": otp,
		"device_public_key": hex.EncodeToString(key.Public().Bytes())}, &b)
	if err != nil {
		return nil, err
	}
	cred, err := hex.DecodeString(b.Credential)
	if err != nil {
		return nil, err
	}
	p := &person{psn: psn, dev: &code.Device{Key: key, Credential: cred}, step: b.StepSeconds}
	if withCredit {
		var ag struct {
			Status string `json:"status"`
		}
		_, err := f.app(ctx, cookie, "/app/api/credit/applications", map[string]any{"bank_code": banksim.DefaultBankCode,
			"consent_version": credit.ConsentVersion, "accept": true}, &ag)
		switch {
		case err != nil && strings.Contains(err.Error(), ": 409 "):
			p.credit = true // the demo gave this person a line already
		case err != nil:
			return nil, fmt.Errorf("credit application: %w", err)
		default:
			p.credit = ag.Status == "active"
		}
	}
	return p, nil
}

func (f *Fleet) login(ctx context.Context, user, pw string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	st, b, err := f.send(ctx, "POST", "/api/v1/auth/login", "application/json", body, nil, nil)
	if err != nil {
		return "", err
	}
	if st != 200 || json.Unmarshal(b, &out) != nil {
		return "", fmt.Errorf("loadgen: login as %s: %d %s", user, st, clip(b))
	}
	return out.Token, nil
}

// admin makes a call as the administrator.
func (f *Fleet) admin(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	st, b, err := f.send(ctx, method, path, ctype, body, nil, func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+f.token)
		if method != "GET" {
			r.Header.Set("Idempotency-Key", newKey())
		}
	})
	if err != nil {
		return err
	}
	if st >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, st, clip(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// app makes a call of the official app (the patient's phone); it returns
// the session cookie the platform set, if any.
func (f *Fleet) app(ctx context.Context, cookie, path string, in, out any) (string, error) {
	body, _ := json.Marshal(in)
	var set string
	st, b, err := f.send(ctx, "POST", path, "application/json", body, nil, func(r *http.Request) {
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
	}, func(resp *http.Response) {
		for _, c := range resp.Cookies() {
			set = c.Name + "=" + c.Value
		}
	})
	if err != nil {
		return "", err
	}
	if st >= 300 {
		return "", fmt.Errorf("POST %s: %d %s", path, st, clip(b))
	}
	return set, json.Unmarshal(b, out)
}

// send makes one HTTP call, signed by signer if given.
func (f *Fleet) send(ctx context.Context, method, path, ctype string, body []byte, signer *auth.Signer, hdr func(*http.Request), after ...func(*http.Response)) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if hdr != nil {
		hdr(req)
	}
	if signer != nil {
		if err := signer.Sign(req, body); err != nil {
			return 0, nil, err
		}
		// Go's transport resends a request with an Idempotency-Key by
		// itself when a reused connection drops; a copy with the same
		// nonce is (rightly) refused as a replay. Retries here are ours,
		// each signed afresh.
		req.GetBody = nil
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	for _, a := range after {
		a(resp)
	}
	return resp.StatusCode, b, nil
}

func newKey() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "lg-" + hex.EncodeToString(b)
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// --- running transactions ---

// RunOptions bound a run.
type RunOptions struct {
	Duration time.Duration // stop starting transactions after this long (0: no limit)
	Tx       int64         // stop after this many transactions (0: no limit)
	// Rate, if > 0, starts transactions open loop at this many per second
	// (Clients workers take them; a transaction's latency counts from its
	// scheduled start, so queueing shows). 0 runs closed loop: every
	// client starts its next transaction when the last one ends.
	Rate float64
	// Stop, if not nil, stops starting transactions when closed.
	Stop <-chan struct{}
}

// Result is a run's history and transactions.
type Result struct {
	Start   time.Time
	Elapsed time.Duration
	Txs     []Tx
	History *History
}

// Counters are a running run's figures, read by progress lines.
type Counters struct {
	Done, Ok, Errors atomic.Int64
	LastOk           atomic.Int64 // when the latest ok transaction ended (unix ns)
}

// Run drives transactions until a bound is reached, then waits for the
// ones in flight. c, if not nil, is updated as transactions end.
func (f *Fleet) Run(ctx context.Context, o RunOptions, c *Counters) *Result {
	if c == nil {
		c = &Counters{}
	}
	run := f.run.Add(1)
	start := time.Now()
	h := newHistory(start, f.cfg.Clients)
	txs := make([][]Tx, f.cfg.Clients)
	var stopped atomic.Bool
	stopCh := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { stopped.Store(true); close(stopCh) }) }
	if o.Duration > 0 {
		t := time.AfterFunc(o.Duration, stop)
		defer t.Stop()
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-o.Stop:
		case <-stopCh:
			return
		}
		stop()
	}()
	var next atomic.Int64
	take := func() (int64, bool) {
		if stopped.Load() {
			return 0, false
		}
		id := next.Add(1)
		if o.Tx > 0 && id > o.Tx {
			return 0, false
		}
		return id, true
	}
	type job struct {
		id int64
		at time.Time
	}
	var jobs chan job
	if o.Rate > 0 {
		jobs = make(chan job, 1<<16)
		go func() {
			defer close(jobs)
			for k := 0; ; k++ {
				at := start.Add(time.Duration(float64(k) / o.Rate * float64(time.Second)))
				select {
				case <-stopCh:
					return
				case <-time.After(time.Until(at)):
				}
				id, ok := take()
				if !ok {
					return
				}
				select {
				case jobs <- job{id, at}:
				case <-stopCh:
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for i := range f.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{f: f, id: i, hist: h, run: run, rng: mrand.New(mrand.NewPCG(f.cfg.Seed+uint64(run), uint64(i)))}
			for {
				var id int64
				var at time.Time
				if jobs != nil {
					j, ok := <-jobs
					if !ok {
						break
					}
					id, at = j.id, j.at
				} else {
					var ok bool
					if id, ok = take(); !ok {
						break
					}
					at = time.Now()
				}
				tx := cl.transact(ctx, id, at)
				txs[i] = append(txs[i], tx)
				c.Done.Add(1)
				if tx.Outcome == Ok {
					c.Ok.Add(1)
					c.LastOk.Store(time.Now().UnixNano())
				} else {
					c.Errors.Add(1)
				}
			}
			h.clients[i] = cl.ops
		}()
	}
	wg.Wait()
	stop()
	r := &Result{Start: start, Elapsed: time.Since(start), History: h}
	for _, t := range txs {
		r.Txs = append(r.Txs, t...)
	}
	return r
}

type client struct {
	f    *Fleet
	id   int
	run  int64
	hist *History
	ops  []Op
	rng  *mrand.Rand
}

func (c *client) since(t time.Time) int64 { return int64(t.Sub(c.hist.start)) }

// transact runs one outpatient transaction.
func (c *client) transact(ctx context.Context, id int64, at time.Time) Tx {
	f := c.f
	p := f.persons[c.rng.IntN(len(f.persons))]
	h := f.hospitals[p.hospital]
	tx := Tx{ID: id, Client: c.id, Psn: p.psn, Hospital: h.code, Start: at}
	key := fmt.Sprintf("%s-%d-%d", f.cfg.RunID, c.run, id)
	end := func(s Step, t Type, code string) Tx {
		tx.Outcome, tx.FailStep, tx.Code, tx.Total = t, s, code, time.Since(at)
		return tx
	}

	// The phone mints a code; the cashier scans it.
	t0 := time.Now()
	text, err := p.mint()
	tx.Steps[StepCode] = time.Since(t0)
	if err != nil {
		return end(StepCode, Fail, err.Error())
	}
	var res struct {
		EcToken string `json:"ec_token"`
	}
	t0 = time.Now()
	typ, code, _ := c.call(ctx, &tx, StepResolve, h, "/api/v1/ecert/resolve", map[string]string{"code": text}, key+"-r", "", "", &res)
	tx.Steps[StepResolve] = time.Since(t0)
	if typ != Ok {
		return end(StepResolve, typ, code)
	}
	tx.EcToken = res.EcToken

	var v struct {
		MdtrtID string `json:"mdtrt_id"`
	}
	t0 = time.Now()
	typ, code, _ = c.call(ctx, &tx, StepVisit, h, "/api/v1/visits", map[string]string{"ec_token": res.EcToken, "fixmedins_code": h.code,
		"visit_type": "general_outpatient", "dept_code": "NK", "dept_name": "内科"}, key+"-v", "", "", &v)
	tx.Steps[StepVisit] = time.Since(t0)
	if typ != Ok {
		return end(StepVisit, typ, code)
	}
	tx.MdtrtID = v.MdtrtID

	lines := make([]map[string]string, f.cfg.Lines)
	for i := range lines {
		it := f.items[c.rng.IntN(len(f.items))]
		price := int64(50 + c.rng.IntN(1500))
		if it.cap > 0 && price > it.cap {
			price = it.cap
		}
		lines[i] = map[string]string{"feedetl_sn": fmt.Sprint(i + 1), "catalog_code": it.code,
			"unit_price": fmt.Sprintf("%d.%02d", price/100, price%100), "quantity": fmt.Sprint(1 + c.rng.IntN(2))}
	}
	t0 = time.Now()
	typ, code, _ = c.call(ctx, &tx, StepLines, h, "/api/v1/visits/"+v.MdtrtID+"/fee-lines", map[string]any{"lines": lines}, key+"-l", v.MdtrtID, "", nil)
	tx.Steps[StepLines] = time.Since(t0)
	if typ != Ok {
		return end(StepLines, typ, code)
	}

	channel := "counter"
	if p.credit && c.rng.Float64() < f.cfg.CreditFraction {
		channel = "credit"
	}
	var o struct {
		SetlID   string `json:"setl_id"`
		PayOrdID string `json:"pay_ord_id"`
		AcctPay  string `json:"acct_pay"`
	}
	t0 = time.Now()
	typ, code, _ = c.call(ctx, &tx, StepPay, h, "/api/v1/visits/"+v.MdtrtID+"/pay", map[string]string{"channel": channel}, key+"-p1", v.MdtrtID, channel, &o)
	if typ == Fail && channel == "credit" {
		// The credit line refused (limit reached): the patient pays at
		// the counter, a new request with a new key.
		tx.Fallback, channel = true, "counter"
		typ, code, _ = c.call(ctx, &tx, StepPay, h, "/api/v1/visits/"+v.MdtrtID+"/pay", map[string]string{"channel": channel}, key+"-p2", v.MdtrtID, channel, &o)
	}
	tx.Steps[StepPay] = time.Since(t0)
	if typ != Ok {
		return end(StepPay, typ, code)
	}
	tx.SetlID, tx.PayOrdID, tx.Channel, tx.AcctPaid = o.SetlID, o.PayOrdID, channel, o.AcctPay != "" && o.AcctPay != "0.00"
	return end(NumSteps, Ok, "")
}

// call makes one step's call as hospital h, retrying an unknown outcome
// with the same key when the fleet retries. It records every attempt.
func (c *client) call(ctx context.Context, tx *Tx, step Step, h *hospital, path string, in any, key, ref, channel string, out any) (Type, string, int) {
	body, _ := json.Marshal(in)
	if step == StepPay {
		tx.PayKeys = append(tx.PayKeys, key)
	}
	first := time.Now()
	var conflictSince time.Time
	for attempt := 1; ; attempt++ {
		op := Op{Client: c.id, Tx: tx.ID, Step: step, Attempt: attempt, Start: c.since(time.Now()), Key: key, Ref: ref, Channel: channel}
		st, b, err := c.f.send(ctx, "POST", path, "application/json", body, h.signer, func(r *http.Request) { r.Header.Set("Idempotency-Key", key) })
		op.End, op.Status = c.since(time.Now()), st
		op.Type, op.Code = classify(st, b, err)
		if op.Type == Ok && out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				op.Type, op.Code = Info, "unreadable answer"
			}
		}
		if op.Type == Ok && step == StepPay {
			var o struct {
				SetlID string `json:"setl_id"`
			}
			json.Unmarshal(b, &o)
			op.Ref = o.SetlID
		}
		c.ops = append(c.ops, op)
		if step == StepPay {
			switch op.Type {
			case Info:
				tx.PayInfo = true
			case Fail:
				tx.PayFails++
			}
		}
		if op.Type != Info || !c.f.cfg.Retry || ctx.Err() != nil || time.Since(first) > c.f.cfg.RetryFor ||
			op.Code == "idempotency_outcome_lost" { // committed but unanswered: retrying cannot tell more; the final read will
			return op.Type, op.Code, st
		}
		if op.Code == "idempotency_conflict" {
			// In flight elsewhere, or left reserved by a process that
			// died: give it a few seconds, then leave it unknown.
			if conflictSince.IsZero() {
				conflictSince = time.Now()
			} else if time.Since(conflictSince) > 3*time.Second {
				return op.Type, op.Code, st
			}
		}
		wait := min(time.Duration(25<<min(attempt, 6))*time.Millisecond, time.Second)
		select {
		case <-ctx.Done():
			return op.Type, op.Code, st
		case <-time.After(wait + time.Duration(c.rng.IntN(int(wait/2)+1))):
		}
	}
}

// classify maps an answer to the history's types: 2xx ok; a 4xx is a
// definite refusal except 409 idempotency_conflict (the key is in flight),
// 409 idempotency_outcome_lost (the call committed changes, then the
// server stopped before answering) and 429; 5xx and transport errors are
// unknown.
func classify(status int, body []byte, err error) (Type, string) {
	if err != nil {
		return Info, transportCode(err)
	}
	var e struct {
		Code string `json:"code"`
	}
	if status >= 300 {
		json.Unmarshal(body, &e)
		if e.Code == "" {
			e.Code = fmt.Sprintf("http_%d", status)
		}
	}
	switch {
	case status >= 200 && status < 300:
		return Ok, ""
	case status >= 500, status == 429, status == 409 && (e.Code == "idempotency_conflict" || e.Code == "idempotency_outcome_lost"):
		return Info, e.Code
	}
	return Fail, e.Code
}

func transportCode(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport_error"
}
