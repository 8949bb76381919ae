package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"yibao"
	"yibao/app"
	"yibao/demo"
	"yibao/hub"
	"yibao/ledger/engine"
	"yibao/loadgen"
	"yibao/settlement"
	"yibao/sqlstore"
)

// XRConfig is the cross-region crash test (R20, docs/cross-region.md): a
// hub and one node per province, each its own child process (Command +
// "hub serve" or "serve") on its own SQLite database, seeded as
// app.OpenRegions seeds them. Workers settle cross-region outpatient
// bills over REST at the treating nodes while one random process at a
// time is killed with SIGKILL and restarted. Afterwards no settlement
// may be half-done and none acknowledged may be lost.
type XRConfig struct {
	Command   []string // the executable and any leading arguments
	Env       []string // extra environment of every child
	Dir       string   // a fresh folder: <Dir>/hub, <Dir>/<province>
	Provinces []string // default 37, 32, 44; a person of one is treated in the next
	Duration  time.Duration
	Kills     int // spread over Duration: one in each Duration/Kills slot
	Workers   int
	Seed      uint64
	// DoubtAfter is the nodes' xr_doubt_after: how long a prepared
	// settlement waits before recovery asks the hub (3 s; production 15 s).
	DoubtAfter time.Duration
	// Quiet bounds the wait, after the load, for the system to settle:
	// nothing undelivered or being decided at the hub, nothing prepared
	// at a node, every node's books agreeing with the hub (60 s).
	Quiet time.Duration
	// Recover bounds one process's start (60 s).
	Recover time.Duration
	Log     io.Writer // progress lines
	// History, if not nil, gets every settle attempt as a JSON line.
	History io.Writer
}

// XRReport is what a cross-region crash test found.
type XRReport struct {
	Provinces []string
	Elapsed   time.Duration // the load
	// Attempts are settle calls (a visit's settle with one idempotency
	// key, retried after an unknown outcome): ok, fail or info. Skipped
	// counts visits that could not be opened or billed.
	Attempts, Ok, Fail, Info int
	Skipped                  int
	// InfoCommitted and InfoAborted are the info attempts the final read
	// found settled, or not; InfoUnresolved neither (a settlement still
	// pending).
	InfoCommitted, InfoAborted, InfoUnresolved int
	NotOk                                      map[string]int // "settle fail cross_region_aborted", "visit info connection_refused", …
	Kills                                      map[string]int // by process: hub, 37, …
	Restart                                    []time.Duration
	// Quiet is how long the system took to settle after the last kill,
	// QuietAfterLoad after the load stopped; Quieted false: not within
	// XRConfig.Quiet.
	Quiet, QuietAfterLoad time.Duration
	Quieted               bool
	HubTxns               map[string]int // by state
	PresumedAborts        int
	// Lost: acknowledged settlements not committed at the hub and
	// completed at their treating node. HalfDone: transactions still
	// being decided at the hub, prepared at a node, or pending at the
	// treating node. Disagreements: transactions whose nodes do not agree
	// with the hub. Duplicates: visits settled twice. FailedButSettled:
	// a definite refusal whose visit settled after all.
	Lost, HalfDone, Disagreements, Duplicates, FailedButSettled int
	LedgerViolations                                            []string
	Clearing                                                    []string // per month and node: agrees / the problems
	ClearingAgrees                                              bool
	Problems                                                    []string
}

// OK reports whether the run found nothing wrong.
func (r *XRReport) OK() bool {
	return r.Lost == 0 && r.HalfDone == 0 && r.Disagreements == 0 && r.Duplicates == 0 && r.FailedButSettled == 0 &&
		r.InfoUnresolved == 0 && len(r.LedgerViolations) == 0 && r.ClearingAgrees && r.Quieted && len(r.Problems) == 0
}

func (r *XRReport) problem(format string, args ...any) {
	if len(r.Problems) < 50 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// xrAttempt is one settle attempt, as its worker saw it.
type xrAttempt struct {
	Worker   int          `json:"worker"`
	Psn      string       `json:"psn_no"`
	Insured  string       `json:"insured_node"`
	Treating string       `json:"treating_node"`
	MdtrtID  string       `json:"mdtrt_id"`
	Key      string       `json:"key"`
	Type     loadgen.Type `json:"type"`
	Code     string       `json:"code,omitempty"`
	SetlID   string       `json:"setl_id,omitempty"` // of an ok answer, or named by cross_region_in_doubt
	Tries    []string     `json:"tries"`             // each call's outcome and code
	Start    time.Time    `json:"start"`
	End      time.Time    `json:"end"`
	Resolved string       `json:"resolved,omitempty"` // info: what the final read found
}

// CrossRegion runs the test and the final read.
func CrossRegion(ctx context.Context, c XRConfig) (*XRReport, error) {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if len(c.Provinces) == 0 {
		c.Provinces = []string{"37", "32", "44"}
	}
	if c.Duration <= 0 {
		c.Duration = 40 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 6
	}
	if c.DoubtAfter <= 0 {
		c.DoubtAfter = 3 * time.Second
	}
	if c.Quiet <= 0 {
		c.Quiet = 60 * time.Second
	}
	if c.Recover <= 0 {
		c.Recover = 60 * time.Second
	}
	cl, err := setupRegions(ctx, c)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	for _, p := range cl.procs {
		if err := p.start(ctx, c.Recover); err != nil {
			return nil, fmt.Errorf("start %s: %w", p.name, err)
		}
	}
	fmt.Fprintf(c.Log, "hub %s, nodes %s; %d workers for %s, %d kills\n", cl.hubURL, strings.Join(cl.urls, " "), c.Workers, c.Duration, c.Kills)

	rep := &XRReport{Provinces: c.Provinces, NotOk: map[string]int{}, Kills: map[string]int{}}
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	results := make([][]*xrAttempt, c.Workers)
	skipped := make([]map[string]int, c.Workers)
	people := cl.people()
	for w := 0; w < c.Workers; w++ {
		skipped[w] = map[string]int{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(c.Seed, uint64(w)))
			for i := w; ; i += c.Workers {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				p := people[i%len(people)]
				if a := cl.settleOne(ctx, w, p, rng, skipped[w]); a != nil {
					results[w] = append(results[w], a)
				}
			}
		}(w)
	}

	// The chaos: one kill in each Duration/Kills slot, at a random point
	// of its middle half, of a random process, restarted 0.3–1.5 s later.
	rng := mrand.New(mrand.NewPCG(c.Seed, 20))
	var lastKill time.Time
	var runErr error
	if c.Kills > 0 {
		slot := c.Duration / time.Duration(c.Kills)
		for k := 0; k < c.Kills && runErr == nil; k++ {
			at := start.Add(time.Duration(k)*slot + slot/4 + time.Duration(rng.Int64N(int64(slot/2)+1)))
			select {
			case <-ctx.Done():
				runErr = ctx.Err()
				continue
			case <-time.After(time.Until(at)):
			}
			p := cl.procs[rng.IntN(len(cl.procs))]
			down := 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)+1))
			p.kill()
			lastKill = time.Now()
			rep.Kills[p.name]++
			time.Sleep(down)
			if err := p.start(ctx, c.Recover); err != nil {
				runErr = fmt.Errorf("restart %s after kill %d: %w", p.name, k+1, err)
				continue
			}
			rep.Restart = append(rep.Restart, time.Since(lastKill))
			fmt.Fprintf(c.Log, "kill %d at %s: %s, down %s, ready again %s after the kill\n", k+1, lastKill.Sub(start).Round(time.Millisecond),
				p.name, down.Round(time.Millisecond), time.Since(lastKill).Round(time.Millisecond))
		}
	}
	if runErr == nil {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
		case <-time.After(time.Until(start.Add(c.Duration))):
		}
	}
	close(stop)
	wg.Wait()
	loadEnd := time.Now()
	rep.Elapsed = loadEnd.Sub(start)
	if runErr != nil {
		return nil, runErr
	}
	if lastKill.IsZero() {
		lastKill = loadEnd
	}
	var attempts []*xrAttempt
	for w := range results {
		attempts = append(attempts, results[w]...)
		for k, n := range skipped[w] {
			rep.NotOk[k] += n
			rep.Skipped += n
		}
	}
	fmt.Fprintf(c.Log, "load stopped after %s: %d settle attempts; waiting for the system to settle (at most %s)\n",
		rep.Elapsed.Round(time.Millisecond), len(attempts), c.Quiet)

	// Quiet: the hub has delivered everything and decided everything, no
	// node holds a prepared settlement, every node's books agree.
	months := slices.Compact([]string{monthOf(start), monthOf(time.Now())})
	deadline := time.Now().Add(c.Quiet)
	var last string
	for {
		done, why, checks, err := cl.quiet(ctx, months)
		if err != nil {
			last = err.Error()
		} else {
			last = why
		}
		if done {
			rep.Quieted, rep.Quiet, rep.QuietAfterLoad = true, time.Since(lastKill), time.Since(loadEnd)
			rep.Clearing, rep.ClearingAgrees = checks, true
			break
		}
		if checks != nil {
			rep.Clearing = checks
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rep.problem("not quiet %s after the load: %s", c.Quiet, last)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(c.Log, "quiet: %v (%s)\n", rep.Quieted, last)
	for _, p := range cl.procs {
		p.stop()
	}

	if err := cl.finalRead(ctx, rep, attempts); err != nil {
		return nil, err
	}
	if c.History != nil {
		enc := json.NewEncoder(c.History)
		for _, a := range attempts {
			if err := enc.Encode(a); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

func monthOf(t time.Time) string { return t.In(yibao.ChinaTime).Format("2006-01") }

// xrCluster is the hub and the nodes as child processes.
type xrCluster struct {
	c      XRConfig
	hubURL string
	token  string
	urls   []string
	procs  []*proc // the hub, then the nodes in province order
	nodes  []*xrNode
	hc     *http.Client
}

// xrNode is one province's node as the load sees it.
type xrNode struct {
	prov    string
	url     string
	dataset *demo.Dataset
	his     *loadgen.HIS // the node's first hospital
	hosp    string       // its code
	db      string       // the node's SQLite file
}

type xrPerson struct {
	psn      string
	insured  *xrNode
	treating *xrNode
}

// setupRegions seeds the hub and the nodes through app.OpenRegions, as
// `yibao demo --regions` does, closes them, writes the hub's nodes file
// and prepares each child process with the configuration OpenRegions
// used for its node.
func setupRegions(ctx context.Context, c XRConfig) (*xrCluster, error) {
	fmt.Fprintf(c.Log, "seeding %d nodes and the hub into %s\n", len(c.Provinces), c.Dir)
	cfgs := map[string]app.Config{}
	r, err := app.OpenRegions(ctx, app.RegionsConfig{DataDir: c.Dir, Provinces: c.Provinces, LogOut: io.Discard,
		Tune: func(prov string, cfg *app.Config) {
			cfg.LogLevel, cfg.PasswordIterations, cfg.XRDoubtAfter = "warn", 1000, c.DoubtAfter
			cfgs[prov] = *cfg
		}})
	if err != nil {
		return nil, err
	}
	cl := &xrCluster{c: c, hubURL: r.HubURL, token: r.Hub.Token,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * c.Workers, IdleConnTimeout: 30 * time.Second}}}
	var nodes []hub.Node
	for _, n := range r.Nodes {
		pub, err := n.App.NodePublicKey(ctx)
		if err != nil {
			r.Close()
			return nil, err
		}
		nodes = append(nodes, hub.Node{ID: n.Province, Name: n.Province, URL: n.URL, Prefixes: []string{n.Province}, KeyPEM: string(pub)})
	}
	hubAddr := strings.TrimPrefix(r.HubURL, "http://")
	if err := r.Close(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(nodes, "", "  ")
	if err != nil {
		return nil, err
	}
	nodesFile := filepath.Join(c.Dir, "nodes.json")
	if err := os.WriteFile(nodesFile, b, 0o644); err != nil {
		return nil, err
	}
	hubDir := filepath.Join(c.Dir, "hub")
	hp, err := newProc("hub", c, []string{"hub", "serve", "--nodes", nodesFile, "--data-dir", hubDir, "--addr", hubAddr}, nil,
		hubAddr, "/healthz", filepath.Join(hubDir, "hub.log"))
	if err != nil {
		return nil, err
	}
	cl.procs = append(cl.procs, hp)
	for _, prov := range c.Provinces {
		cfg := cfgs[prov]
		env := []string{"YIBAO_ADDR=" + cfg.Addr, "YIBAO_DATA_DIR=" + cfg.DataDir, "YIBAO_DEMO_PROVINCE=" + cfg.DemoProvince,
			"YIBAO_WALLETS=" + cfg.Wallets, "YIBAO_BANKS=" + cfg.Banks, "YIBAO_FACE=" + cfg.Face, "YIBAO_LOG_ORIGIN=" + cfg.LogOrigin,
			"YIBAO_LOG_LEVEL=" + cfg.LogLevel, fmt.Sprintf("YIBAO_PASSWORD_ITERATIONS=%d", cfg.PasswordIterations),
			"YIBAO_XR_HUB=" + cfg.XRHub, "YIBAO_XR_NODE=" + cfg.XRNode, "YIBAO_XR_PREFIXES=" + cfg.XRPrefixes, "YIBAO_XR_HUB_KEY=" + cfg.XRHubKey,
			"YIBAO_XR_DOUBT_AFTER=" + cfg.XRDoubtAfter.String()}
		db := cfg.DB
		if db == "" {
			db = filepath.Join(cfg.DataDir, "yibao.db")
		} else {
			env = append(env, "YIBAO_DB="+db)
		}
		np, err := newProc(prov, c, []string{"serve"}, env, cfg.Addr, "/readyz", filepath.Join(cfg.DataDir, "server.log"))
		if err != nil {
			return nil, err
		}
		cl.procs = append(cl.procs, np)
		d := demo.BuildProvince(prov)
		k, _ := loadgen.DemoHospitalKey(prov, "")
		if k == nil {
			return nil, fmt.Errorf("province %s: no demo hospital key", prov)
		}
		his := loadgen.NewHIS("http://"+cfg.Addr, k)
		his.Client, his.Timeout = cl.hc, 20*time.Second
		cl.nodes = append(cl.nodes, &xrNode{prov: prov, url: his.URL, dataset: d, his: his, hosp: k.FixmedinsCode, db: db})
		cl.urls = append(cl.urls, his.URL)
	}
	return cl, nil
}

// people are the persons the load settles, interleaved by province: each
// province's cross-region demo persons (app.DemoCrossRegionPersons: the
// first four have a filing for the next province), then every other
// person with active basic coverage (employees 310, residents 390); each
// is treated at the first hospital of the next province.
func (cl *xrCluster) people() []xrPerson {
	today := yibao.DateOf(time.Now())
	var per [][]xrPerson
	for i, n := range cl.nodes {
		next := cl.nodes[(i+1)%len(cl.nodes)]
		seen := map[string]bool{}
		var ps []xrPerson
		add := func(psn string) {
			if !seen[psn] {
				seen[psn] = true
				ps = append(ps, xrPerson{psn: psn, insured: n, treating: next})
			}
		}
		for _, psn := range app.DemoCrossRegionPersons(n.dataset) {
			add(psn)
		}
		regions := map[string]bool{}
		for _, r := range n.dataset.Regions {
			regions[r.Admdvs] = true
		}
		for _, c := range n.dataset.Coverages {
			if (c.Insutype == "310" || c.Insutype == "390") && c.Status == yibao.CoverageActive && c.StartDate <= today &&
				(c.EndDate == "" || c.EndDate >= today) && len(c.PsnNo) >= 4 && regions[c.PsnNo[:4]+"00"] {
				add(c.PsnNo)
			}
		}
		per = append(per, ps)
	}
	var out []xrPerson
	for k := 0; ; k++ {
		more := false
		for _, ps := range per {
			if k < len(ps) {
				out, more = append(out, ps[k]), true
			}
		}
		if !more {
			return out
		}
	}
}

var inDoubtRe = regexp.MustCompile(`settlement (\S+) is prepared`)

// settleOne opens a visit for p at the treating node's hospital, uploads
// the bill and settles it. It returns the settle attempt, or nil if the
// visit could not be opened or billed (counted in skipped).
func (cl *xrCluster) settleOne(ctx context.Context, w int, p xrPerson, rng *mrand.Rand, skipped map[string]int) *xrAttempt {
	his := p.treating.his
	var v settlement.Visit
	typ, code, b, _ := cl.call(ctx, his, "/api/v1/visits", map[string]any{"psn_no": p.psn, "fixmedins_code": p.treating.hosp,
		"visit_type": "general_outpatient", "dept_code": "A03"}, rng, nil)
	if typ == loadgen.Ok && json.Unmarshal(b, &v) != nil {
		typ, code = loadgen.Info, "unreadable answer"
	}
	if typ != loadgen.Ok {
		skipped["visit "+typ.String()+" "+code]++
		return nil
	}
	typ, code, _, _ = cl.call(ctx, his, "/api/v1/visits/"+v.MdtrtID+"/fee-lines", map[string]any{"lines": loadgen.XRBill(p.treating.dataset, "general_outpatient")}, rng, nil)
	if typ != loadgen.Ok {
		skipped["fee-lines "+typ.String()+" "+code]++
		return nil
	}
	a := &xrAttempt{Worker: w, Psn: p.psn, Insured: p.insured.prov, Treating: p.treating.prov, MdtrtID: v.MdtrtID, Start: time.Now()}
	var tries []string
	a.Type, a.Code, b, a.Key = cl.call(ctx, his, "/api/v1/visits/"+v.MdtrtID+"/settle", map[string]any{}, rng, &tries)
	a.End, a.Tries = time.Now(), tries
	switch a.Type {
	case loadgen.Ok:
		var st settlement.Settlement
		if err := json.Unmarshal(b, &st); err != nil || st.SetlID == "" {
			a.Type, a.Code = loadgen.Info, "unreadable answer"
		} else {
			a.SetlID = st.SetlID
		}
	case loadgen.Info:
		if m := inDoubtRe.FindSubmatch(b); m != nil {
			a.SetlID = string(m[1])
		}
	}
	return a
}

// call makes a POST with one idempotency key, retrying an unknown outcome
// with the same key up to five times, 0.25–4 s apart; a settlement the
// treating node says is in doubt, and a call the node committed but did
// not answer before it died (idempotency_outcome_lost), are not retried:
// a retry cannot tell more, the final read will. A cross-region abort is
// a definite refusal.
func (cl *xrCluster) call(ctx context.Context, his *loadgen.HIS, path string, in any, rng *mrand.Rand, tries *[]string) (loadgen.Type, string, []byte, string) {
	key := fmt.Sprintf("xr-%016x", rng.Uint64())
	for try := 0; ; try++ {
		st, b, err := his.Send(ctx, http.MethodPost, path, key, in)
		typ, code := loadgen.Classify(st, b, err)
		if st == http.StatusServiceUnavailable {
			switch {
			case strings.Contains(string(b), "cross_region_aborted"):
				typ, code = loadgen.Fail, "cross_region_aborted"
			case strings.Contains(string(b), "cross_region_in_doubt"):
				code = "cross_region_in_doubt"
			}
		}
		if tries != nil {
			*tries = append(*tries, strings.TrimSpace(typ.String()+" "+code))
		}
		if typ != loadgen.Info || try == 5 || ctx.Err() != nil || code == "cross_region_in_doubt" || code == "idempotency_outcome_lost" {
			return typ, code, b, key
		}
		wait := 250 * time.Millisecond << try
		time.Sleep(wait/2 + time.Duration(rng.Int64N(int64(wait/2)+1)))
	}
}

// quiet reports whether the system has settled, or what it waits for, and
// the clearing checks of the months when it looked at them.
func (cl *xrCluster) quiet(ctx context.Context, months []string) (bool, string, []string, error) {
	var st hub.Status
	if err := cl.admin(ctx, "/hub/v1/admin/status", &st); err != nil {
		return false, "", nil, err
	}
	if st.Undelivered > 0 || st.Txns["preparing"] > 0 {
		return false, fmt.Sprintf("hub: %d undelivered, %d preparing", st.Undelivered, st.Txns["preparing"]), nil, nil
	}
	for _, n := range cl.nodes {
		prepared, outbox, err := nodeBacklog(ctx, n.db)
		if err != nil {
			return false, "", nil, fmt.Errorf("node %s: %w", n.prov, err)
		}
		if prepared > 0 || outbox > 0 {
			return false, fmt.Sprintf("node %s: %d prepared, %d reversals to report", n.prov, prepared, outbox), nil, nil
		}
	}
	var checks []string
	agree := true
	for _, m := range months {
		var s hub.Statement
		if err := cl.admin(ctx, "/hub/v1/admin/clearing/"+m, &s); err != nil {
			return false, "", nil, err
		}
		for _, c := range s.Checks {
			if c.Agrees {
				checks = append(checks, fmt.Sprintf("%s node %s agrees", m, c.Node))
			} else {
				agree = false
				checks = append(checks, fmt.Sprintf("%s node %s DISAGREES: %s", m, c.Node, strings.Join(c.Problems, "; ")))
			}
		}
		if len(s.Checks) != len(cl.nodes) {
			agree = false
			checks = append(checks, fmt.Sprintf("%s: %d node checks for %d nodes", m, len(s.Checks), len(cl.nodes)))
		}
	}
	if !agree {
		return false, "clearing: " + strings.Join(checks, "; "), checks, nil
	}
	return true, "quiet", checks, nil
}

// nodeBacklog reads a running node's database: cross-region settlements
// still prepared (either side), reversals not yet reported to the hub.
func nodeBacklog(ctx context.Context, path string) (prepared, outbox int, err error) {
	db, err := sqlstore.Open(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM xr_treating WHERE state = 'prepared') + (SELECT COUNT(*) FROM xr_insured WHERE state = 'prepared'),
		(SELECT COUNT(*) FROM xr_outbox WHERE done_at = 0)`).Scan(&prepared, &outbox)
	return prepared, outbox, err
}

// admin GETs a hub administrator endpoint.
func (cl *xrCluster) admin(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.hubURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("hub %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (cl *xrCluster) close() {
	for _, p := range cl.procs {
		p.close()
	}
	cl.hc.CloseIdleConnections()
}

// finalRead opens every stopped process's database and checks the
// invariants of app/regions_test.go's checkAll, and every attempt of the
// history against them.
func (cl *xrCluster) finalRead(ctx context.Context, rep *XRReport, attempts []*xrAttempt) error {
	hubDB, err := sqlstore.Open(ctx, filepath.Join(cl.c.Dir, "hub", "hub.db"))
	if err != nil {
		return err
	}
	defer hubDB.Close()
	dbs := map[string]*sqlstore.DB{}
	for _, n := range cl.nodes {
		db, err := sqlstore.Open(ctx, n.db)
		if err != nil {
			return err
		}
		defer db.Close()
		dbs[n.prov] = db
	}
	x, err := CheckRegions(ctx, hubDB, dbs)
	if err != nil {
		return err
	}
	rep.HubTxns, rep.PresumedAborts, rep.HalfDone, rep.Disagreements = x.HubTxns, x.PresumedAborts, len(x.HalfDone), len(x.Disagree)
	rep.LedgerViolations = x.LedgerViolations
	for _, p := range slices.Sorted(maps.Keys(x.HalfDone)) {
		rep.problem("half-done %s: %s", p, x.HalfDone[p])
	}
	for _, p := range slices.Sorted(maps.Keys(x.Disagree)) {
		rep.problem("disagreement %s: %s", p, x.Disagree[p])
	}

	// Every attempt against its visit's settlements at the treating node.
	for _, a := range attempts {
		rep.Attempts++
		switch a.Type {
		case loadgen.Ok:
			rep.Ok++
		case loadgen.Fail:
			rep.Fail++
			rep.NotOk["settle fail "+a.Code]++
		case loadgen.Info:
			rep.Info++
			rep.NotOk["settle info "+a.Code]++
		}
		rows, err := dbs[a.Treating].Query(ctx, `SELECT setl_id, status FROM settlements WHERE mdtrt_id = ?`, a.MdtrtID)
		if err != nil {
			return err
		}
		var completed, pending []string
		for rows.Next() {
			var id, status string
			if err := rows.Scan(&id, &status); err != nil {
				rows.Close()
				return err
			}
			switch status {
			case settlement.StatusCompleted, settlement.StatusReversed:
				completed = append(completed, id)
			case settlement.StatusPending:
				pending = append(pending, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(completed) > 1 {
			rep.Duplicates++
			rep.problem("visit %s of %s at node %s settled %d times: %v", a.MdtrtID, a.Psn, a.Treating, len(completed), completed)
		}
		switch a.Type {
		case loadgen.Ok:
			state := x.States[a.SetlID]
			if !slices.Contains(completed, a.SetlID) || state.Hub != "committed" {
				rep.Lost++
				rep.problem("lost: settlement %s of visit %s (acknowledged %s) — hub %q, treating %q, insured %q, completed at the treating node %v",
					a.SetlID, a.MdtrtID, a.End.Format(time.RFC3339Nano), state.Hub, state.Treating, state.Insured, completed)
			}
		case loadgen.Fail:
			if len(completed) > 0 {
				rep.FailedButSettled++
				rep.problem("visit %s refused (%s) but settled: %v", a.MdtrtID, a.Code, completed)
			}
		case loadgen.Info:
			switch {
			case len(pending) > 0:
				rep.InfoUnresolved++
				a.Resolved = "unresolved"
				rep.problem("visit %s (%s, tries %v) still has a pending settlement %v", a.MdtrtID, a.Code, a.Tries, pending)
			case len(completed) > 0:
				rep.InfoCommitted++
				a.Resolved = "committed"
			default:
				rep.InfoAborted++
				a.Resolved = "aborted"
			}
		}
	}
	return nil
}

// XRCheck is the final read of a set of region nodes and their hub.
type XRCheck struct {
	HubTxns        map[string]int // by state
	PresumedAborts int
	// HalfDone: transactions still being decided at the hub, or prepared
	// at a node, or pending at the treating node, with what was found.
	HalfDone map[string]string
	// Disagree: transactions a node and the hub end differently, or a
	// node's transaction the hub never decided.
	Disagree         map[string]string
	LedgerViolations []string
	// States is every transaction's state at the hub and at its nodes.
	States map[string]XRStates
}

// XRStates is one transaction's state at the hub and on each side (""
// where there is no row); Settlement is the treating node's settlement
// status.
type XRStates struct{ Hub, Treating, Insured, Settlement string }

// CheckRegions reads the hub's database and every node's (by node id)
// after they stopped, and checks what app/regions_test.go's checkAll
// checks on running nodes: every hub transaction is decided, nothing is
// prepared at a node, both nodes agree with the hub (committed ↔
// committed or reversed on both sides and the settlement completed or
// reversed; aborted ↔ aborted or absent), no node has a transaction the
// hub did not decide, and every ledger passes engine.Check.
func CheckRegions(ctx context.Context, hubDB *sqlstore.DB, nodes map[string]*sqlstore.DB) (*XRCheck, error) {
	x := &XRCheck{HubTxns: map[string]int{}, HalfDone: map[string]string{}, Disagree: map[string]string{}, States: map[string]XRStates{}}
	type hubTxn struct {
		insured, treating, state string
		reversed                 bool
	}
	txns := map[string]hubTxn{}
	rows, err := hubDB.Query(ctx, `SELECT txid, insured_node, treating_node, state, reversed FROM hub_txns`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var t hubTxn
		var rev int
		if err := rows.Scan(&id, &t.insured, &t.treating, &t.state, &rev); err != nil {
			rows.Close()
			return nil, err
		}
		t.reversed = rev != 0
		txns[id] = t
		x.HubTxns[t.state]++
		if t.insured == "" {
			x.PresumedAborts++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Each node's rows: its side of every transaction it took part in.
	type side struct{ treating, insured, settlement map[string]string }
	sides := map[string]side{}
	for id, db := range nodes {
		s := side{}
		if s.treating, err = stateMap(ctx, db, `SELECT setl_id, state FROM xr_treating`); err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		if s.insured, err = stateMap(ctx, db, `SELECT txid, state FROM xr_insured`); err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		if s.settlement, err = stateMap(ctx, db, `SELECT s.setl_id, s.status FROM settlements s JOIN xr_treating x ON x.setl_id = s.setl_id`); err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		sides[id] = s
		for tx, st := range s.treating {
			if st == settlement.XRPrepared {
				x.HalfDone[tx] += fmt.Sprintf("prepared at treating node %s; ", id)
			}
			if s.settlement[tx] == settlement.StatusPending {
				x.HalfDone[tx] += fmt.Sprintf("settlement pending at treating node %s; ", id)
			}
			if t, ok := txns[tx]; !ok && st != settlement.XRAborted {
				x.Disagree[tx] += fmt.Sprintf("%s at treating node %s, unknown to the hub; ", st, id)
			} else if ok && t.treating != id {
				x.Disagree[tx] += fmt.Sprintf("treated at node %s, the hub says %s; ", id, t.treating)
			}
		}
		for tx, st := range s.insured {
			if st == settlement.XRPrepared {
				x.HalfDone[tx] += fmt.Sprintf("prepared at insured node %s; ", id)
			}
			if t, ok := txns[tx]; !ok && st != settlement.XRAborted {
				x.Disagree[tx] += fmt.Sprintf("%s at insured node %s, unknown to the hub; ", st, id)
			} else if ok && t.insured != id && st != settlement.XRAborted {
				x.Disagree[tx] += fmt.Sprintf("%s at node %s as insured, the hub says %q; ", st, id, t.insured)
			}
		}
	}
	for tx, t := range txns {
		tr, ins := sides[t.treating], sides[t.insured]
		s := XRStates{Hub: t.state, Treating: tr.treating[tx], Insured: ins.insured[tx], Settlement: tr.settlement[tx]}
		x.States[tx] = s
		switch t.state {
		case "committed":
			want, wantSt := settlement.XRCommitted, settlement.StatusCompleted
			if t.reversed {
				want, wantSt = settlement.XRReversed, settlement.StatusReversed
			}
			if s.Treating != want || s.Insured != want || s.Settlement != wantSt {
				x.Disagree[tx] += fmt.Sprintf("committed (reversed %v) at the hub; treating %s: %q (settlement %q), insured %s: %q; ",
					t.reversed, t.treating, s.Treating, s.Settlement, t.insured, s.Insured)
			}
		case "aborted":
			bad := s.Treating != "" && s.Treating != settlement.XRAborted || s.Insured != "" && s.Insured != settlement.XRAborted ||
				s.Settlement != "" && s.Settlement != settlement.StatusVoided
			if bad {
				x.Disagree[tx] += fmt.Sprintf("aborted at the hub; treating %s: %q (settlement %q), insured %s: %q; ",
					t.treating, s.Treating, s.Settlement, t.insured, s.Insured)
			}
		default:
			x.HalfDone[tx] += fmt.Sprintf("%s at the hub; ", t.state)
		}
	}
	// A prepared side that disagrees is counted once, as half-done.
	for tx := range x.HalfDone {
		delete(x.Disagree, tx)
	}
	now := time.Now().UnixMicro()
	for _, id := range append(slices.Sorted(maps.Keys(nodes)), "hub") {
		db := hubDB
		if id != "hub" {
			db = nodes[id]
		}
		r, err := engine.Check(ctx, db, now)
		if err != nil {
			return nil, fmt.Errorf("ledger of %s: %w", id, err)
		}
		for _, v := range r.Violations {
			x.LedgerViolations = append(x.LedgerViolations, id+": "+v)
		}
	}
	return x, nil
}

func stateMap(ctx context.Context, db *sqlstore.DB, q string) (map[string]string, error) {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// Summary is the report's figures in one block.
func (r *XRReport) Summary() string {
	var b strings.Builder
	var kills []string
	total := 0
	for _, p := range append([]string{"hub"}, r.Provinces...) {
		kills = append(kills, fmt.Sprintf("%s %d", p, r.Kills[p]))
		total += r.Kills[p]
	}
	var p50, max time.Duration
	if len(r.Restart) > 0 {
		p50 = loadgen.Percentile(r.Restart, .5)
		for _, d := range r.Restart {
			max = maxDur(max, d)
		}
	}
	fmt.Fprintf(&b, "kills %d in %s: %s; kill → ready again p50 %s, max %s\n", total, r.Elapsed.Round(time.Second), strings.Join(kills, ", "),
		p50.Round(time.Millisecond), max.Round(time.Millisecond))
	fmt.Fprintf(&b, "settle attempts %d: ok %d, fail %d, info %d (resolved: committed %d, aborted %d, unresolved %d); visits not opened or billed %d\n",
		r.Attempts, r.Ok, r.Fail, r.Info, r.InfoCommitted, r.InfoAborted, r.InfoUnresolved, r.Skipped)
	var states []string
	for _, s := range slices.Sorted(maps.Keys(r.HubTxns)) {
		states = append(states, fmt.Sprintf("%s %d", s, r.HubTxns[s]))
	}
	fmt.Fprintf(&b, "hub transactions: %s (presumed aborts %d)\n", strings.Join(states, ", "), r.PresumedAborts)
	if r.Quieted {
		fmt.Fprintf(&b, "quiet %s after the last kill (%s after the load stopped)\n", r.Quiet.Round(time.Millisecond), r.QuietAfterLoad.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "NOT quiet within the bound\n")
	}
	clearing := "every node's books agree with the hub"
	if !r.ClearingAgrees {
		clearing = "NOT AGREED: " + strings.Join(r.Clearing, "; ")
	}
	fmt.Fprintf(&b, "lost %d, half-done %d, disagreements %d, duplicates %d, refused-but-settled %d, ledger violations %d; clearing: %s\n",
		r.Lost, r.HalfDone, r.Disagreements, r.Duplicates, r.FailedButSettled, len(r.LedgerViolations), clearing)
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	b.WriteString(verdict)
	return b.String()
}

// NotOkLines lists the calls that did not end ok by step, outcome and code.
func (r *XRReport) NotOkLines() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(r.NotOk)) {
		out = append(out, fmt.Sprintf("%6d  %s", r.NotOk[k], k))
	}
	return out
}

// proc is a child process: the hub or a node.
type proc struct {
	name    string
	command []string
	env     []string
	addr    string
	ready   string // a path answering 200 once it serves
	log     *os.File
	cmd     *exec.Cmd
	done    chan struct{}
}

func newProc(name string, c XRConfig, args, env []string, addr, ready, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// The parent's YIBAO_* settings are not the child's.
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "YIBAO_") {
			base = append(base, kv)
		}
	}
	return &proc{name: name, command: append(slices.Clone(c.Command), args...), env: append(append(base, c.Env...), env...),
		addr: addr, ready: ready, log: f}, nil
}

// start runs the process and waits until it answers ready.
func (p *proc) start(ctx context.Context, bound time.Duration) error {
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, p.log, p.log
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(p.done)
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.cmd = nil
			return fmt.Errorf("%s exited at start; see %s", p.name, p.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get("http://" + p.addr + p.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New(p.name + " did not become ready")
}

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop ends the process cleanly (SIGTERM), or kills it after 15 s.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.cmd = nil
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *proc) close() {
	p.kill()
	p.log.Close()
}
