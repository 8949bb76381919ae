package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"yibao/loadgen"
)

// FailoverConfig is a failover drill (R19's replica half): two PostgreSQL
// clusters made here — a primary that commits only once a synchronous
// standby has the commit on disk, and that standby, streaming from it —
// with the platform (Command + "serve") on a multi-host DSN naming both.
// Under loadgen's load the primary is stopped without a shutdown
// (pg_ctl stop -m immediate: every backend quits at once, nothing is
// flushed or checkpointed), the standby is promoted, and the load goes
// on against the same platform process, which reconnects to the new
// primary by itself. The checkers of the crash test then run on the
// promoted server.
type FailoverConfig struct {
	Command []string // the executable and any leading arguments; "serve" is appended
	Env     []string // extra environment of the child
	// Dir is a fresh folder: the clusters go in Dir/pg (owned by the
	// postgres user when run as root, which initdb needs), the platform's
	// data folder is Dir/yibao. When run as root Dir is made traversable
	// (0711) so that postgres can reach Dir/pg.
	Dir   string
	PGBin string // PostgreSQL's bin folder ("" = the newest /usr/lib/postgresql/*/bin)
	Ports [2]int // primary, standby (0 = a free port)
	// Duration is how long the failover run's load lasts (30 s); the
	// primary is stopped KillAfter into it (Duration/3) and the standby
	// promoted PromoteAfter later (0: at once; a real failover manager
	// first has to notice).
	Duration     time.Duration
	KillAfter    time.Duration
	PromoteAfter time.Duration
	// Compare, if > 0, runs before the failover run three phases of this
	// length at Rate transactions a second (0: closed loop, every client
	// starting its next transaction when the last ends): the standby
	// synchronous, then not (synchronous_standby_names = ''), then
	// synchronous again, to measure what the synchronous standby costs.
	Compare time.Duration
	Rate    float64
	Load    loadgen.Config // URL, Retry and the admin login are filled in
	// Recover bounds the failover: kill → first settlement (90 s).
	Recover time.Duration
	Log     io.Writer // progress lines
	// History, if not nil, gets the failover run's history as JSON lines.
	History io.Writer
}

// StandbyName is the standby's application_name, which the primary's
// synchronous_standby_names names.
const StandbyName = "yibao_standby"

// FailoverReport is a drill's figures: the checkers' (Report) and the
// failover's own.
type FailoverReport struct {
	Report
	Version string // PostgreSQL's
	Ports   [2]int
	DSN     string
	// OkBefore is how many transactions had succeeded when the primary
	// was stopped, KillAfter into the run.
	OkBefore  int64
	KillAfter time.Duration
	// Promoted is kill → the standby accepting writes; Failover is kill →
	// the first settlement acknowledged after that (by the new primary).
	Promoted time.Duration
	Failover time.Duration
	// During counts the calls that did not end ok from the kill to the
	// first settlement after it, After those from then to the end, by
	// step, outcome and code ("pay info unavailable", …).
	During map[string]int
	After  map[string]int
	// TxAfterKill and TxAfterKillOk count the transactions that ended
	// after the kill, and how many of them ended ok.
	TxAfterKill, TxAfterKillOk int
	// WALPerTx is the WAL the primary wrote, and streamed to the standby,
	// per ok transaction of the failover run before the kill; DiskPerTx
	// is the growth of the database (tables and indexes, on the promoted
	// server) per settlement made in the drill.
	WALPerTx, DiskPerTx int64
	// Commits is one commit's latency (PayP50, PayP99) with the standby
	// synchronous, not, and synchronous again: 400 sequential one-row
	// INSERTs on the primary each time.
	Commits []Phase
	// Phases is the latency of each phase: the compare phases (if any),
	// then the failover run before the kill and after the failover.
	Phases []Phase
}

// Phase is the latency of the ok transactions of one phase.
type Phase struct {
	Name               string
	Duration           time.Duration
	Ok, NotOk          int
	PayP50, PayP99     time.Duration // the pay step: settlement and payment, one ledger unit
	TotalP50, TotalP99 time.Duration // the whole transaction (resolve, visit, fee lines, pay)
}

// FindPGBin returns the bin folder of the newest PostgreSQL installed
// under /usr/lib/postgresql that has initdb.
func FindPGBin() (string, error) {
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(ms) == 0 {
		return "", errors.New("no /usr/lib/postgresql/*/bin/initdb: PostgreSQL's server binaries are not installed")
	}
	ver := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(ms, func(a, b string) int { return ver(a) - ver(b) })
	return filepath.Dir(ms[len(ms)-1]), nil
}

// Failover runs the drill and the checkers. The report says what was
// found; an error means the drill could not be run to the end. The
// clusters are stopped before it returns, whatever happened.
func Failover(ctx context.Context, c FailoverConfig) (*FailoverReport, error) {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.KillAfter <= 0 {
		c.KillAfter = c.Duration / 3
	}
	if c.KillAfter >= c.Duration {
		return nil, fmt.Errorf("the kill (%s in) must come before the end of the run (%s)", c.KillAfter, c.Duration)
	}
	if c.Recover <= 0 {
		c.Recover = 90 * time.Second
	}
	if c.PGBin == "" {
		b, err := FindPGBin()
		if err != nil {
			return nil, err
		}
		c.PGBin = b
	}
	for i, p := range c.Ports {
		if p == 0 {
			free, err := freePort()
			if err != nil {
				return nil, err
			}
			c.Ports[i] = free
		} else if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			return nil, fmt.Errorf("port %d is taken (--ports): %w", p, err)
		} else {
			ln.Close()
		}
	}
	if c.Ports[0] == c.Ports[1] {
		return nil, fmt.Errorf("the primary and the standby need two ports, not %d twice", c.Ports[0])
	}

	// The clusters' folder belongs to postgres: initdb refuses to run as
	// root, and the servers must own their data.
	pgDir := filepath.Join(c.Dir, "pg")
	if err := os.MkdirAll(pgDir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user for the clusters: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pgDir, uid, gid); err != nil {
			return nil, err
		}
		if err := os.Chmod(c.Dir, 0o711); err != nil {
			return nil, err
		}
	}
	primary := &pgNode{name: "primary", bin: c.PGBin, dir: filepath.Join(pgDir, "primary"), sock: pgDir, port: c.Ports[0]}
	standby := &pgNode{name: "standby", bin: c.PGBin, dir: filepath.Join(pgDir, "standby"), sock: pgDir, port: c.Ports[1]}
	defer func() {
		// Whatever happened: no cluster outlives the drill.
		standby.stop()
		primary.stop()
	}()

	fmt.Fprintf(c.Log, "initdb the primary (%s, port %d)\n", c.PGBin, primary.port)
	if err := primary.run(ctx, "initdb", "-D", primary.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, err
	}
	// The primary waits for the standby's flush before it answers a
	// commit. The setting lives in the primary's postgresql.auto.conf, so
	// that ALTER SYSTEM can switch it for the compare phases; the standby
	// copies that file and overrides it on its command line.
	conf, err := os.OpenFile(filepath.Join(primary.dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(conf, "synchronous_commit = on\nsynchronous_standby_names = '%s'\n", StandbyName)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := primary.start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.Log, "pg_basebackup -R the standby (port %d)\n", standby.port)
	if err := standby.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", standby.dir, "-R", "-X", "stream", "-c", "fast"); err != nil {
		return nil, err
	}
	// cluster_name is the walreceiver's application_name; after a
	// promotion the new primary waits for no standby.
	standby.opts = "-c cluster_name=" + StandbyName + " -c synchronous_standby_names=''"
	if err := standby.start(ctx); err != nil {
		return nil, err
	}

	admin, err := pgx.Connect(ctx, primary.dsn("postgres"))
	if err != nil {
		return nil, err
	}
	defer func() { admin.Close(context.Background()) }()
	rep := &FailoverReport{Ports: c.Ports, KillAfter: c.KillAfter}
	if err := admin.QueryRow(ctx, `SHOW server_version`).Scan(&rep.Version); err != nil {
		return nil, err
	}
	if err := waitSyncState(ctx, admin, "sync"); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.Log, "PostgreSQL %s: the standby streams, sync_state = sync\n", rep.Version)
	if _, err := admin.Exec(ctx, `CREATE DATABASE yibao`); err != nil {
		return nil, err
	}

	// The platform, on both hosts: pgx tries them in order and keeps the
	// one that accepts writes.
	rep.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/yibao?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.port, standby.port)
	yDir := filepath.Join(c.Dir, "yibao")
	if err := os.MkdirAll(yDir, 0o700); err != nil {
		return nil, err
	}
	srv, err := startPlatform(ctx, c.Command, c.Env, yDir, rep.DSN, c.Recover, c.Log)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	lc := c.Load
	lc.URL, lc.Retry = "http://"+srv.addr, true
	fleet, err := loadgen.Setup(ctx, lc, c.Log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.Log, "%d HIS clients, %d persons with a bound device (%d with a credit line)\n", lc.Clients, fleet.Persons(), fleet.CreditPersons())

	var dbBefore int64
	if err := admin.QueryRow(ctx, `SELECT pg_database_size('yibao')`).Scan(&dbBefore); err != nil {
		return nil, err
	}
	since := time.Now().UnixMicro()
	var txs []loadgen.Tx
	var ops [3]int // ok, fail, info over every run

	// What the synchronous standby costs one commit: a one-row INSERT,
	// committed alone, sequentially, in each mode.
	if _, err := admin.Exec(ctx, `CREATE TABLE failover_probe (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL)`); err != nil {
		return nil, err
	}
	for i, sync := range []bool{true, false, true} {
		if err := setSync(ctx, admin, sync); err != nil {
			return nil, err
		}
		p, err := probeCommits(ctx, admin, 400)
		if err != nil {
			return nil, err
		}
		p.Name = fmt.Sprintf("%d. %s", i+1, syncLabel(sync))
		rep.Commits = append(rep.Commits, p)
	}
	if c.Compare > 0 {
		for i, sync := range []bool{true, false, true} {
			if err := setSync(ctx, admin, sync); err != nil {
				return nil, err
			}
			load := fmt.Sprintf("%.0f tx/s offered", c.Rate)
			if c.Rate <= 0 {
				load = "closed loop"
			}
			fmt.Fprintf(c.Log, "compare %d/3: %s, %s for %s\n", i+1, syncLabel(sync), load, c.Compare)
			res := fleet.Run(ctx, loadgen.RunOptions{Duration: c.Compare, Rate: c.Rate}, nil)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			txs = append(txs, res.Txs...)
			o, f, in := res.History.Counts()
			ops[0], ops[1], ops[2] = ops[0]+o, ops[1]+f, ops[2]+in
			rep.Phases = append(rep.Phases, phaseOf(fmt.Sprintf("%d. %s", i+1, syncLabel(sync)), res.Txs, time.Time{}, time.Time{}, res.Elapsed))
		}
	}
	if err := setSync(ctx, admin, true); err != nil {
		return nil, err
	}
	var lsn0 string
	if err := admin.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0); err != nil {
		return nil, err
	}

	// The failover run: closed loop, the primary stopped KillAfter in.
	fmt.Fprintf(c.Log, "failover run: %s of load; the primary is stopped %s in\n", c.Duration, c.KillAfter)
	var ctr loadgen.Counters
	stop := make(chan struct{})
	resc := make(chan *loadgen.Result, 1)
	go func() { resc <- fleet.Run(ctx, loadgen.RunOptions{Stop: stop}, &ctr) }()
	stopLoad := func() *loadgen.Result {
		select {
		case <-stop:
		default:
			close(stop)
		}
		return <-resc
	}
	start := time.Now()
	var killed, promoted, recovered time.Time
	runErr := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.KillAfter):
		}
		rep.OkBefore = ctr.Ok.Load()
		// The WAL the primary wrote (and the standby received) so far.
		var wal int64
		if err := admin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint`, lsn0).Scan(&wal); err != nil {
			return err
		}
		admin.Close(ctx)
		if rep.OkBefore > 0 {
			rep.WALPerTx = wal / rep.OkBefore
		}
		killed = time.Now()
		if err := primary.run(ctx, "pg_ctl", "stop", "-D", primary.dir, "-m", "immediate", "-w"); err != nil {
			return fmt.Errorf("stopping the primary: %w", err)
		}
		fmt.Fprintf(c.Log, "primary stopped (-m immediate) after %d ok transactions\n", rep.OkBefore)
		if c.PromoteAfter > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(c.PromoteAfter):
			}
		}
		if err := standby.run(ctx, "pg_ctl", "promote", "-D", standby.dir, "-w"); err != nil {
			return fmt.Errorf("promoting the standby: %w", err)
		}
		promoted = time.Now()
		rep.Promoted = promoted.Sub(killed)
		fmt.Fprintf(c.Log, "standby promoted %s after the kill\n", rep.Promoted.Round(time.Millisecond))
		// No commit can succeed between the kill and the promotion, so
		// the first ok transaction to end after the promotion is the
		// first settlement the new primary acknowledged.
		for ctr.LastOk.Load() < promoted.UnixNano() {
			if time.Since(killed) > c.Recover {
				return fmt.Errorf("no settlement succeeded within %s of the kill; see %s", c.Recover, filepath.Join(yDir, "server.log"))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		recovered = time.Unix(0, ctr.LastOk.Load())
		rep.Failover = recovered.Sub(killed)
		fmt.Fprintf(c.Log, "first settlement on the new primary %s after the kill\n", rep.Failover.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(start.Add(c.Duration))):
		}
		return nil
	}()
	res := stopLoad()
	rep.Elapsed = time.Since(start)
	srv.stop()
	if runErr != nil {
		return nil, runErr
	}
	if c.History != nil {
		if err := res.History.WriteJSONL(c.History); err != nil {
			return nil, err
		}
	}
	txs = append(txs, res.Txs...)
	o, f, in := res.History.Counts()
	ops[0], ops[1], ops[2] = ops[0]+o, ops[1]+f, ops[2]+in

	// What the clients saw.
	rep.During, rep.After = map[string]int{}, map[string]int{}
	k, r := int64(killed.Sub(res.Start)), int64(recovered.Sub(res.Start))
	for _, op := range res.History.Ops() {
		if op.Type == loadgen.Ok || op.End < k {
			continue
		}
		what := op.Step.String() + " " + op.Type.String() + " " + op.Code
		if op.End <= r {
			rep.During[what]++
		} else {
			rep.After[what]++
		}
	}
	for _, tx := range res.Txs {
		if tx.Start.Add(tx.Total).After(killed) {
			rep.TxAfterKill++
			if tx.Outcome == loadgen.Ok {
				rep.TxAfterKillOk++
			}
		}
	}
	rep.Phases = append(rep.Phases,
		phaseOf("failover run, before the kill (synchronous standby)", res.Txs, start, killed, killed.Sub(start)),
		phaseOf("failover run, after the failover (promoted, no standby)", res.Txs, recovered, start.Add(c.Duration), start.Add(c.Duration).Sub(recovered)))

	// The final read and the checkers, on the promoted server.
	check, err := pgx.Connect(ctx, standby.dsn("yibao"))
	if err != nil {
		return nil, err
	}
	var inRecovery bool
	var dbAfter, made int64
	err = check.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_database_size('yibao'), (SELECT COUNT(*) FROM settlements WHERE created_at >= $1)`,
		since).Scan(&inRecovery, &dbAfter, &made)
	check.Close(ctx)
	if err != nil {
		return nil, err
	}
	if made > 0 {
		rep.DiskPerTx = (dbAfter - dbBefore) / made
	}
	if inRecovery {
		return nil, errors.New("the promoted standby is still in recovery")
	}
	chk, err := finalRead(ctx, standby.dsn("yibao"), &loadgen.Result{Txs: txs, History: res.History}, since)
	if err != nil {
		return nil, err
	}
	elapsed := rep.Elapsed
	rep.Report = *chk
	rep.OpsOk, rep.OpsFail, rep.OpsInfo = ops[0], ops[1], ops[2]
	rep.Ops = ops[0] + ops[1] + ops[2]
	rep.Elapsed = elapsed
	return rep, nil
}

// phaseOf measures the ok transactions that started in [from, to) (all
// of them if from is zero).
func phaseOf(name string, txs []loadgen.Tx, from, to time.Time, d time.Duration) Phase {
	p := Phase{Name: name, Duration: d}
	var pay, total []time.Duration
	for _, tx := range txs {
		if !from.IsZero() && (tx.Start.Before(from) || !tx.Start.Before(to)) {
			continue
		}
		if tx.Outcome != loadgen.Ok {
			p.NotOk++
			continue
		}
		p.Ok++
		pay = append(pay, tx.Steps[loadgen.StepPay])
		total = append(total, tx.Total)
	}
	p.PayP50, p.PayP99 = loadgen.Percentile(pay, .5), loadgen.Percentile(pay, .99)
	p.TotalP50, p.TotalP99 = loadgen.Percentile(total, .5), loadgen.Percentile(total, .99)
	return p
}

func syncLabel(sync bool) string {
	if sync {
		return "synchronous standby"
	}
	return "standby not synchronous (commit = local flush)"
}

// setSync names the standby in synchronous_standby_names, or no standby,
// and waits until the primary reports it so.
func setSync(ctx context.Context, admin *pgx.Conn, sync bool) error {
	names, state := StandbyName, "sync"
	if !sync {
		names, state = "", "async"
	}
	if _, err := admin.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '`+names+`'`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return err
	}
	return waitSyncState(ctx, admin, state)
}

// probeCommits times n one-row INSERTs, each its own transaction.
func probeCommits(ctx context.Context, conn *pgx.Conn, n int) (Phase, error) {
	ds := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t0 := time.Now()
		if _, err := conn.Exec(ctx, `INSERT INTO failover_probe (at) VALUES ($1)`, t0.UnixMicro()); err != nil {
			return Phase{}, err
		}
		ds = append(ds, time.Since(t0))
	}
	return Phase{Duration: time.Since(start), Ok: n, PayP50: loadgen.Percentile(ds, .5), PayP99: loadgen.Percentile(ds, .99)}, nil
}

// waitSyncState waits until the standby is connected with this
// sync_state ("sync" or "async") in the primary's pg_stat_replication.
func waitSyncState(ctx context.Context, admin *pgx.Conn, want string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		err := admin.QueryRow(ctx, `SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, StandbyName).Scan(&state)
		if err == nil && state == want {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby %s did not reach sync_state %s (now %q)", StandbyName, want, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pgNode is one PostgreSQL cluster of the drill.
type pgNode struct {
	name, bin, dir, sock string
	port                 int
	opts                 string // extra postgres options of pg_ctl start
	started              bool
}

// run runs one of PostgreSQL's programs, as the postgres user when this
// process is root (initdb and pg_ctl refuse to run as root).
func (n *pgNode) run(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(n.bin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s of the %s: %w\n%s", tool, n.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *pgNode) start(ctx context.Context) error {
	opts := fmt.Sprintf("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s %s", n.port, n.sock, n.opts)
	n.started = true
	return n.run(ctx, "pg_ctl", "start", "-D", n.dir, "-l", filepath.Join(n.sock, n.name+".log"), "-w", "-t", "60", "-o", opts)
}

// stop stops the cluster at once if it may be running.
func (n *pgNode) stop() {
	if !n.started {
		return
	}
	if _, err := os.Stat(filepath.Join(n.dir, "postmaster.pid")); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.run(ctx, "pg_ctl", "stop", "-D", n.dir, "-m", "immediate", "-w")
}

func (n *pgNode) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", n.port, db)
}

// Summary is the drill's figures in one block.
func (r *FailoverReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PostgreSQL %s, primary :%d with a synchronous standby :%d; the platform on %s\n", r.Version, r.Ports[0], r.Ports[1], r.DSN)
	fmt.Fprintf(&b, "failover run %s (until the last transaction ended): primary stopped (-m immediate) %s in, after %d ok transactions; standby promoted %s after the kill; first settlement on the new primary %s after the kill\n",
		r.Elapsed.Round(time.Second), r.KillAfter, r.OkBefore, r.Promoted.Round(time.Millisecond), r.Failover.Round(time.Millisecond))
	fmt.Fprintf(&b, "after the kill: %d transactions ended, %d ok; calls not ok from the kill to the first settlement after: %s; later: %s\n",
		r.TxAfterKill, r.TxAfterKillOk, codes(r.During), codes(r.After))
	fmt.Fprintf(&b, "per transaction: %.1f KiB of WAL streamed to the standby; the database grew %.1f KiB per settlement\n",
		float64(r.WALPerTx)/1024, float64(r.DiskPerTx)/1024)
	fmt.Fprintf(&b, "one commit (a one-row INSERT, 400 in a row; same machine: primary, standby, platform and clients share its cores):\n")
	for _, p := range r.Commits {
		fmt.Fprintf(&b, "  %-58s p50 %s p99 %s\n", p.Name, p.PayP50.Round(10*time.Microsecond), p.PayP99.Round(10*time.Microsecond))
	}
	fmt.Fprintf(&b, "latency of ok transactions:\n")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "  %-58s %5d ok %4d not ok in %5s (%5.1f tx/s)  pay p50 %6s p99 %6s  whole p50 %6s p99 %6s\n",
			p.Name, p.Ok, p.NotOk, p.Duration.Round(time.Second), float64(p.Ok)/max(p.Duration.Seconds(), 1e-9),
			p.PayP50.Round(time.Millisecond), p.PayP99.Round(time.Millisecond), p.TotalP50.Round(time.Millisecond), p.TotalP99.Round(time.Millisecond))
	}
	b.WriteString(r.Checks())
	return b.String()
}

func codes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	n := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n += m[k]
		parts = append(parts, fmt.Sprintf("%d %s", m[k], strings.TrimSpace(k)))
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}
