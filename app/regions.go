package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"yibao"
	"yibao/demo"
	"yibao/hub"
	"yibao/registry"
)

// Regions is several province nodes and the national hub in one process
// on loopback: `yibao demo --regions 3` and the cross-region tests. Each
// node is a whole platform with its own database and data dir; they
// reach each other only through the hub's signed HTTP.
type Regions struct {
	cfg    RegionsConfig
	Hub    *HubApp
	HubURL string
	Nodes  []*RegionNode

	hubLn   net.Listener
	hubStop context.CancelFunc
	hubDone chan error
}

// RegionNode is one province's node.
type RegionNode struct {
	Province string
	App      *App
	URL      string
	Dataset  *demo.Dataset

	addr string
	stop context.CancelFunc
	done chan error
	mu   sync.Mutex
}

// RegionsConfig configures OpenRegions.
type RegionsConfig struct {
	DataDir   string   // the hub under <data_dir>/hub, each node under <data_dir>/<province>
	Provinces []string // demo provinces, e.g. 37, 32, 44
	Host      string   // default 127.0.0.1
	HubPort   int      // 0: any free port
	NodePorts []int    // one per province; 0 or missing: any free port
	// Tune adjusts a node's configuration (tests: database DSN, quick
	// password hashing); nil keeps the defaults.
	Tune   func(province string, c *Config)
	LogOut io.Writer
}

// OpenRegions opens the hub and every node, seeding an empty node with
// its province's demo data and the hub with every node's public key. It
// listens on every port but serves nothing until Serve.
func OpenRegions(ctx context.Context, rc RegionsConfig) (*Regions, error) {
	if rc.Host == "" {
		rc.Host = "127.0.0.1"
	}
	if rc.LogOut == nil {
		rc.LogOut = os.Stderr
	}
	r := &Regions{cfg: rc}
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", rc.Host, rc.HubPort))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	r.hubLn, r.HubURL = ln, "http://"+ln.Addr().String()
	hubDir := filepath.Join(rc.DataDir, "hub")
	if _, err := LoadHubKey(hubDir); err != nil {
		ln.Close()
		return nil, err
	}
	var nodes []hub.Node
	for i, prov := range rc.Provinces {
		port := 0
		if i < len(rc.NodePorts) {
			port = rc.NodePorts[i]
		}
		n := &RegionNode{Province: prov, addr: fmt.Sprintf("%s:%d", rc.Host, port)}
		if port == 0 {
			l, err := net.Listen("tcp", n.addr)
			if err != nil {
				r.Close()
				return nil, err
			}
			n.addr = l.Addr().String()
			l.Close()
		}
		n.URL = "http://" + n.addr
		r.Nodes = append(r.Nodes, n)
		if err := r.openNode(ctx, n); err != nil {
			r.Close()
			return nil, fmt.Errorf("node %s: %w", prov, err)
		}
		pub, err := n.App.NodePublicKey(ctx)
		if err != nil {
			r.Close()
			return nil, err
		}
		nodes = append(nodes, hub.Node{ID: prov, Name: provinceName(n.Dataset), URL: n.URL, Prefixes: []string{prov}, KeyPEM: string(pub)})
	}
	r.Hub, err = OpenHub(ctx, HubConfig{Addr: ln.Addr().String(), DataDir: hubDir, Nodes: nodes}, rc.LogOut)
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func provinceName(d *demo.Dataset) string {
	return map[string]string{"37": "山东省", "32": "江苏省", "44": "广东省"}[d.Province]
}

// nodeConfig is a node's configuration.
func (r *Regions) nodeConfig(n *RegionNode) Config {
	cfg := Defaults()
	cfg.Addr = n.addr
	cfg.DataDir = filepath.Join(r.cfg.DataDir, n.Province)
	cfg.DemoProvince = n.Province
	cfg.Wallets, cfg.Banks, cfg.Face = "off", "off", "off"
	cfg.LogOrigin = "yibao.local/" + n.Province + "/log"
	cfg.XRHub, cfg.XRNode, cfg.XRPrefixes = r.HubURL, n.Province, n.Province
	cfg.XRHubKey = filepath.Join(r.cfg.DataDir, "hub", "hub-public.pem")
	if r.cfg.Tune != nil {
		r.cfg.Tune(n.Province, &cfg)
	}
	return cfg
}

// openNode opens (and on first start seeds) a node's platform.
func (r *Regions) openNode(ctx context.Context, n *RegionNode) error {
	cfg := r.nodeConfig(n)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	a, err := Open(ctx, cfg, r.cfg.LogOut)
	if err != nil {
		return err
	}
	n.App, n.Dataset = a, a.DemoDataset()
	var count int
	if err := a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM institutions`).Scan(&count); err != nil {
		return err
	}
	if count == 0 {
		if _, err := a.Seed(ctx, n.Dataset); err != nil {
			return err
		}
		if err := seedFilings(ctx, a, n.Dataset, r.cfg.Provinces); err != nil {
			return err
		}
	}
	return a.EnsureAdmin(ctx)
}

// DemoFilings are the filings the demo gives the first employees of each
// province, for treatment in the next province of the list: one of each
// kind; the fifth employee has none (unregistered).
var DemoFilings = []string{registry.FilingLongTerm, registry.FilingReferred, registry.FilingTemporary, registry.FilingEmergency}

func seedFilings(ctx context.Context, a *App, d *demo.Dataset, provinces []string) error {
	if len(provinces) < 2 {
		return nil
	}
	var next string
	for i, p := range provinces {
		if p == a.Config.DemoProvince {
			next = provinces[(i+1)%len(provinces)]
		}
	}
	ctx = yibao.WithPrincipal(ctx, yibao.System("demo"))
	today := yibao.DateOf(time.Now())
	k := 0
	for _, psn := range DemoCrossRegionPersons(d) {
		if k == len(DemoFilings) {
			break
		}
		f := registry.Filing{PsnNo: psn, Kind: DemoFilings[k], DestAdmdvs: next + "0000", BeginDate: today[:8] + "01",
			Reason: "演示备案"}
		if f.Kind == registry.FilingTemporary || f.Kind == registry.FilingEmergency {
			f.EndDate = time.Now().AddDate(0, 3, 0).In(yibao.ChinaTime).Format(yibao.DateLayout)
		}
		if _, err := a.Registry.CreateFiling(ctx, f); err != nil {
			return err
		}
		k++
	}
	return nil
}

// DemoCrossRegionPersons are the demo's employees (open-ended employee
// coverage in the province's first region) used for cross-region care,
// in dataset order: the first four have filings (DemoFilings), the rest
// none.
func DemoCrossRegionPersons(d *demo.Dataset) []string {
	var out []string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && len(d.Regions) > 0 && c.Admdvs == d.Regions[0].Admdvs {
			out = append(out, c.PsnNo)
		}
	}
	return out
}

// Serve serves the hub and every node until ctx ends.
func (r *Regions) Serve(ctx context.Context) error {
	hctx, stop := context.WithCancel(ctx)
	r.hubStop, r.hubDone = stop, make(chan error, 1)
	go func() { r.hubDone <- r.Hub.ServeOn(hctx, r.hubLn, nil) }()
	for _, n := range r.Nodes {
		if err := r.StartNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// StartNode serves a node (again, after StopNode).
func (r *Regions) StartNode(ctx context.Context, n *RegionNode) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.App == nil {
		if err := r.openNode(ctx, n); err != nil {
			return err
		}
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after a stop
		if ln, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	nctx, stop := context.WithCancel(ctx)
	n.stop, n.done = stop, make(chan error, 1)
	go func() { n.done <- n.App.ServeOn(nctx, ln, nil) }()
	return nil
}

// StopNode stops a node as a crash would leave it: it stops answering
// and its platform is closed; what it committed stays, nothing more
// happens. StartNode opens it again from its data dir.
func (r *Regions) StopNode(n *RegionNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		n.stop()
		<-n.done
		n.stop = nil
	}
	if n.App != nil {
		n.App.Close()
		n.App = nil
	}
}

// Close stops everything.
func (r *Regions) Close() error {
	var errs []error
	for _, n := range r.Nodes {
		r.StopNode(n)
	}
	if r.hubStop != nil {
		r.hubStop()
		<-r.hubDone
	} else if r.hubLn != nil {
		r.hubLn.Close()
	}
	if r.Hub != nil {
		errs = append(errs, r.Hub.Close())
	}
	return errors.Join(errs...)
}

// Node returns the node of a province.
func (r *Regions) Node(province string) *RegionNode {
	for _, n := range r.Nodes {
		if n.Province == province {
			return n
		}
	}
	return nil
}
