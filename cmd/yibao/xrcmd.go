package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"yibao"
	"yibao/app"
	"yibao/demo"
	"yibao/hub"
	"yibao/loadgen"
	"yibao/money"
	"yibao/settlement"
)

// runHub runs the national hub, or asks a running one.
func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: yibao hub serve --nodes FILE [--addr A] [--data-dir D] | status | txns [--month M] | clearing MONTH [--run] [--svg FILE]  (clients: --url URL --token-file F)")
	if len(args) == 0 {
		return usage
	}
	if args[0] == "serve" {
		fs := flag.NewFlagSet("yibao hub serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("addr", "127.0.0.1:8090", "listen address")
		dir := fs.String("data-dir", ".yibao/hub", "the hub's data dir: hub.key, admin.token, hub.db")
		db := fs.String("db", "", "database DSN (default <data-dir>/hub.db)")
		nodes := fs.String("nodes", "", "JSON file of the nodes: [{id, name, url, prefixes, public_key_file}]")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *nodes == "" {
			return errors.New("yibao hub serve: --nodes is required")
		}
		ns, err := app.LoadHubNodes(*nodes)
		if err != nil {
			return err
		}
		h, err := app.OpenHub(ctx, app.HubConfig{Addr: *addr, DataDir: *dir, DB: *db, Nodes: ns}, stderr)
		if err != nil {
			return err
		}
		defer h.Close()
		return h.Serve(ctx, func(a string) {
			fmt.Fprintf(stdout, "hub serving on http://%s for %d nodes; public key %s, admin token in %s\n", a, len(ns),
				filepath.Join(*dir, "hub-public.pem"), filepath.Join(*dir, "admin.token"))
		})
	}
	fs := flag.NewFlagSet("yibao hub "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8090", "the hub's URL")
	tokenFile := fs.String("token-file", ".yibao/regions/hub/admin.token", "the hub administrator's token file")
	month := fs.String("month", "", "clearing month YYYY-MM (txns)")
	run := fs.Bool("run", false, "clearing: post the month (default: show the statement only)")
	svg := fs.String("svg", "", "clearing: also draw the month's flows as an SVG chart to this file")
	cmd := args[0]
	rest := args[1:]
	var pos string
	if cmd == "clearing" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		pos, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("the hub's admin token: %w", err)
	}
	hc := hubClient{url: strings.TrimRight(*url, "/"), token: strings.TrimSpace(string(tok))}
	switch cmd {
	case "status":
		var st hub.Status
		if err := hc.do(ctx, "GET", "/hub/v1/admin/status", &st); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "node\tname\turl\tprovinces")
		for _, n := range st.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, n.Name, n.URL, strings.Join(n.Prefixes, ","))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "\ntransactions: %v; undelivered messages: %d; cleared months: %v\n", st.Txns, st.Undelivered, st.Cleared)
		return nil
	case "txns":
		var ts []hub.Txn
		if err := hc.do(ctx, "GET", "/hub/v1/admin/txns?limit=50&clr_month="+*month, &ts); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "txid\tinsured\ttreating\thospital\tfund+acct (yuan)\tstate\tmonth\treversed")
		for _, t := range ts {
			rev := ""
			if t.Reversed {
				rev = "in " + t.RevMonth
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.TxID, t.InsuAdmdvs, t.TreatingAdmdvs, t.FixmedinsCode,
				money.Fen(t.FundPay+t.AcctPay), t.State, t.ClrMonth, rev)
		}
		return tw.Flush()
	case "clearing":
		if pos == "" {
			pos = time.Now().In(yibao.ChinaTime).Format("2006-01")
		}
		method := "GET"
		if *run {
			method = "POST"
		}
		var st hub.Statement
		if err := hc.do(ctx, method, "/hub/v1/admin/clearing/"+pos, &st); err != nil {
			return err
		}
		printStatement(stdout, &st)
		if *svg != "" {
			if err := os.WriteFile(*svg, clearingSVG(&st), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "chart: %s\n", *svg)
		}
		return nil
	}
	return usage
}

type hubClient struct{ url, token string }

func (c hubClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hub answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func printStatement(w io.Writer, st *hub.Statement) {
	state := "preview (not posted; --run posts it)"
	if st.Posted {
		state = "posted " + st.CreatedAt.In(yibao.ChinaTime).Format("2006-01-02 15:04")
	}
	fmt.Fprintf(w, "clearing statement %s — %s\n\n", st.Month, state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "insured region\ttreating region\tsettlements\treversals\tfunds\taccounts\towed (yuan)\t")
	for _, f := range st.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n", f.Insured, f.Treating, f.Settlements, f.Reversals, money.Fen(f.FundPay), money.Fen(f.AcctPay), money.Fen(f.Amount))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nafter netting each pair:")
	for _, n := range st.Nets {
		fmt.Fprintf(w, "  %s pays %s  %s yuan\n", n.From, n.To, money.Fen(n.Amount))
	}
	fmt.Fprintf(w, "\ngross %s yuan, moved after netting %s yuan\n\n", money.Fen(st.Gross), money.Fen(st.Netted))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "region\tnode\treceivable\tpayable\tnet (yuan)\t")
	var sum int64
	for _, r := range st.Regions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.Admdvs, r.Node, money.Fen(r.Receivable), money.Fen(r.Payable), money.Fen(r.Net))
		sum += r.Net
	}
	tw.Flush()
	fmt.Fprintf(w, "nets sum to %s yuan\n\n", money.Fen(sum))
	for _, c := range st.Checks {
		if c.Agrees {
			fmt.Fprintf(w, "node %s: its books agree with the hub to the fen\n", c.Node)
		} else {
			fmt.Fprintf(w, "node %s: DISAGREES: %s\n", c.Node, strings.Join(c.Problems, "; "))
		}
	}
}

// clearingSVG draws the month's flows: one bar per pair of regions, the
// gross each way and the net.
func clearingSVG(st *hub.Statement) []byte {
	var b bytes.Buffer
	rows := len(st.Flows)
	h := 80 + rows*34
	var maxAmt int64 = 1
	for _, f := range st.Flows {
		maxAmt = max(maxAmt, f.Amount)
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="760" height="%d" font-family="sans-serif" font-size="13">`, h)
	fmt.Fprintf(&b, `<rect width="760" height="%d" fill="#fff"/><text x="20" y="28" font-size="16">异地就医清算 %s — cross-region clearing (yuan)</text>`, h, st.Month)
	for i, f := range st.Flows {
		y := 50 + i*34
		w := int(float64(f.Amount) / float64(maxAmt) * 420)
		fmt.Fprintf(&b, `<text x="20" y="%d">%s → %s</text>`, y+16, f.Insured, f.Treating)
		fmt.Fprintf(&b, `<rect x="150" y="%d" width="%d" height="20" fill="#2f7ed8"/>`, y+2, max(w, 1))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s (%d)</text>`, 156+w, y+16, money.Fen(f.Amount), f.Settlements)
	}
	fmt.Fprintf(&b, `<text x="20" y="%d">gross %s, after netting %s</text></svg>`, h-12, money.Fen(st.Gross), money.Fen(st.Netted))
	return b.Bytes()
}

// runXR drives a cross-region settlement at a treating node the way a HIS
// does, over the REST API with a demo institution key.
func runXR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "settle" {
		return errors.New("usage: yibao xr settle --url NODE --psn PSN [--key KEY_ID] [--visit general_outpatient|emergency|inpatient] [--reverse]")
	}
	fs := flag.NewFlagSet("yibao xr settle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8081", "the treating node's URL")
	keyID := fs.String("key", "", "the demo institution key to sign with (default: the treating province's first hospital)")
	psn := fs.String("psn", "", "the patient's psn_no (insured in another province)")
	visit := fs.String("visit", "general_outpatient", "visit type: general_outpatient, emergency or inpatient")
	reverse := fs.Bool("reverse", false, "reverse the settlement afterwards (the insured region gets its money and accumulators back)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *psn == "" {
		return errors.New("yibao xr settle: --psn is required")
	}
	key, d := loadgen.DemoHospitalKey(provinceAt(*url), *keyID)
	if key == nil {
		return fmt.Errorf("no demo institution key %q for the node at %s (pass --key, e.g. ak_demo_h32010000001)", *keyID, *url)
	}
	c := loadgen.NewHIS(*url, key)
	var v settlement.Visit
	if err := c.Post(ctx, "/api/v1/visits", map[string]any{"psn_no": *psn, "fixmedins_code": key.FixmedinsCode, "visit_type": *visit, "dept_code": "A03"}, &v); err != nil {
		return fmt.Errorf("open visit: %w", err)
	}
	fmt.Fprintf(stdout, "visit %s at %s for %s (insured in %s): filing status %s, %s\n", v.MdtrtID, key.FixmedinsCode, v.PsnNo, v.InsuAdmdvs, v.CrossStatus, v.CrossScope)
	if err := c.Post(ctx, "/api/v1/visits/"+v.MdtrtID+"/fee-lines", map[string]any{"lines": loadgen.XRBill(d, *visit)}, &v); err != nil {
		return fmt.Errorf("fee lines: %w", err)
	}
	if *visit == "inpatient" {
		if err := c.Post(ctx, "/api/v1/visits/"+v.MdtrtID+"/discharge", map[string]any{}, &v); err != nil {
			return fmt.Errorf("discharge: %w", err)
		}
	}
	var st settlement.Settlement
	if err := c.Post(ctx, "/api/v1/visits/"+v.MdtrtID+"/settle", map[string]any{}, &st); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	fmt.Fprintf(stdout, "settlement %s %s: bill %s, funds of %s %s, personal account %s, cash %s yuan\n", st.SetlID, st.Status,
		st.MedfeeSumamt, st.InsuAdmdvs, st.FundPaySumamt, st.AcctPay, st.PsnCashPay)
	if st.Result != nil {
		fmt.Fprintf(stdout, "  policy %s of %s, rules for %s care at level %d, deductible %s, first-pay %s\n", st.Result.PolicyVersion, st.Result.Admdvs,
			st.Result.Breakdown.CrossStatus, st.Result.Breakdown.Level, st.Result.Breakdown.Deductible, st.Result.Breakdown.FirstPay)
	}
	for _, l := range st.Legs {
		fmt.Fprintf(stdout, "  leg %-14s %s → %s  %s\n", l.Leg, l.Debit, l.Credit, l.Amount)
	}
	if *reverse {
		if err := c.Post(ctx, "/api/v1/settlements/"+st.SetlID+"/reverse", map[string]any{}, &st); err != nil {
			return fmt.Errorf("reverse: %w", err)
		}
		fmt.Fprintf(stdout, "reversed: %s (the insured region is told through the hub)\n", st.Status)
	}
	return nil
}

// provinceAt guesses the demo province of a node URL from the regions
// demo's port layout (8080 Shandong, 8081 Jiangsu, 8082 Guangdong).
func provinceAt(url string) string {
	ports := map[string]string{":8080": "37", ":8081": "32", ":8082": "44"}
	for p, prov := range ports {
		if strings.HasSuffix(strings.TrimRight(url, "/"), p) {
			return prov
		}
	}
	return ""
}

// runRegionsDemo starts the hub and n province nodes on loopback, seeded
// with the demo data and filings, and prints how to settle across regions
// and clear the month.
func runRegionsDemo(ctx context.Context, n int, keep bool, dataDir, addr string, stdout, stderr io.Writer) error {
	provs := demo.Provinces()
	if n < 2 || n > len(provs) {
		return fmt.Errorf("--regions: 2 to %d provinces", len(provs))
	}
	if !keep {
		if err := os.RemoveAll(dataDir); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first node listens on --addr, the next ones on the following
	// ports, the hub ten above the first (8080…8082 and 8090 by default).
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	base, err := strconv.Atoi(p)
	if err != nil || base < 1 || base > 65525 {
		return fmt.Errorf("--addr %q: want a port below 65526", addr)
	}
	var ports []int
	for i := 0; i < n; i++ {
		ports = append(ports, base+i)
	}
	fmt.Fprintf(stdout, "starting the national hub and %d province nodes (first start seeds each node: ~%d s)…\n", n, 3*n)
	start := time.Now()
	r, err := app.OpenRegions(ctx, app.RegionsConfig{DataDir: dataDir, Provinces: provs[:n], Host: host, HubPort: base + 10, NodePorts: ports, LogOut: stderr,
		Tune: func(_ string, c *app.Config) { c.LogLevel = "warn" }})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Serve(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready in %s\n\n", time.Since(start).Round(time.Millisecond))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "national hub\t%s\t(admin token: %s)\n", r.HubURL, filepath.Join(dataDir, "hub", "admin.token"))
	for _, nd := range r.Nodes {
		cashier := ""
		for _, u := range nd.Dataset.Users {
			if u.Role == "cashier" && cashier == "" {
				cashier = u.Username
			}
		}
		fmt.Fprintf(tw, "%s node\t%s\t(cashier %s / cashier123, admin / admin123)\n", provinceName(nd.Dataset), nd.URL, cashier)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\ncross-region patients (insured in one province, treated in the next one's hospitals):")
	for i, nd := range r.Nodes {
		next := r.Nodes[(i+1)%len(r.Nodes)]
		ps := app.DemoCrossRegionPersons(nd.Dataset)
		names := map[string]string{}
		for k, kind := range app.DemoFilings {
			if k < len(ps) {
				names[ps[k]] = kind + " filing"
			}
		}
		var list []string
		for k := 0; k < 5 && k < len(ps); k++ {
			lbl := names[ps[k]]
			if lbl == "" {
				lbl = "no filing"
			}
			list = append(list, ps[k]+" ("+lbl+")")
		}
		sort.Strings(list)
		fmt.Fprintf(stdout, "  %s → %s: %s\n", provinceName(nd.Dataset), provinceName(next.Dataset), strings.Join(list, ", "))
	}
	first := app.DemoCrossRegionPersons(r.Nodes[0].Dataset)
	month := time.Now().In(yibao.ChinaTime).Format("2006-01")
	tok := filepath.Join(dataDir, "hub", "admin.token")
	key := ""
	for _, k := range r.Nodes[1].Dataset.APIKeys {
		if key == "" && strings.HasPrefix(k.FixmedinsCode, "H") {
			key = k.KeyID
		}
	}
	fmt.Fprintf(stdout, `
try it (in another terminal):
  yibao xr settle --url %[1]s --key %[2]s --psn %[3]s                    # outpatient, long-term filing
  yibao xr settle --url %[1]s --key %[2]s --psn %[4]s --visit inpatient  # inpatient, no filing
  yibao hub txns --url %[5]s --token-file %[6]s
  yibao hub clearing %[7]s --url %[5]s --token-file %[6]s                # the statement, checked against every node
  yibao hub clearing %[7]s --run --svg clearing.svg --url %[5]s --token-file %[6]s

Ctrl-C stops everything; --keep restarts on the same data.
`, r.Nodes[1].URL, key, first[0], first[4], r.HubURL, tok, month)
	<-ctx.Done()
	return nil
}

func provinceName(d *demo.Dataset) string {
	names := map[string]string{"37": "Shandong 山东", "32": "Jiangsu 江苏", "44": "Guangdong 广东"}
	if n, ok := names[d.Province]; ok {
		return n
	}
	return d.Province
}
