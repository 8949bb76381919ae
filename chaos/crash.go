package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"yibao/app"
	"yibao/demo"
	"yibao/loadgen"
	"yibao/sqlstore"
)

// CrashConfig is a crash test (R1): the platform runs as a child process
// (Command + "serve") on a fresh store, loadgen drives it, and the child is
// killed with SIGKILL at random moments and started again.
type CrashConfig struct {
	Command []string // the executable and any leading arguments; "serve" is appended
	Env     []string // extra environment of the child
	Dir     string   // a fresh data folder
	DSN     string   // SQLite file ("" = <Dir>/yibao.db) or a fresh PostgreSQL schema
	Kills   int
	Min     time.Duration // the interval between recovery and the next kill is uniform in [Min, Max]
	Max     time.Duration
	Seed    uint64
	Load    loadgen.Config // URL, Retry and the admin login are filled in
	// After is how long the load runs after the last recovery (2 s).
	After time.Duration
	// Recover bounds one restart's recovery (120 s).
	Recover time.Duration
	Log     io.Writer // progress lines
	// History, if not nil, gets the run's history as JSON lines.
	History io.Writer
}

// Crash runs the test and the checkers. The report says what was found;
// an error means the test could not be run to the end.
func Crash(ctx context.Context, c CrashConfig) (*Report, error) {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.DSN == "" {
		c.DSN = filepath.Join(c.Dir, "yibao.db")
	}
	if c.After <= 0 {
		c.After = 2 * time.Second
	}
	if c.Recover <= 0 {
		c.Recover = 120 * time.Second
	}
	if c.Max < c.Min {
		c.Max = c.Min
	}
	srv, err := startPlatform(ctx, c.Command, c.Env, c.Dir, c.DSN, c.Recover, c.Log)
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
	fmt.Fprintf(c.Log, "%d HIS clients, %d persons with a bound device (%d with a credit line); %d kills %s–%s apart\n",
		lc.Clients, fleet.Persons(), fleet.CreditPersons(), c.Kills, c.Min, c.Max)

	since := time.Now().UnixMicro()
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

	r := &Report{}
	rng := mrand.New(mrand.NewPCG(c.Seed, 14))
	start := time.Now()
	var runErr error
	for k := 1; k <= c.Kills && runErr == nil; k++ {
		wait := c.Min + time.Duration(rng.Int64N(int64(c.Max-c.Min)+1))
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			continue
		case <-time.After(wait):
		}
		before := ctr.Ok.Load()
		srv.kill()
		r.Kills++
		restarted := time.Now()
		if err := srv.start(ctx); err != nil {
			runErr = fmt.Errorf("restart after kill %d: %w", k, err)
			continue
		}
		for ctr.LastOk.Load() < restarted.UnixNano() {
			if time.Since(restarted) > c.Recover {
				runErr = fmt.Errorf("kill %d: no settlement succeeded within %s of the restart", k, c.Recover)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		rec := time.Duration(ctr.LastOk.Load() - restarted.UnixNano())
		r.Recovery = append(r.Recovery, rec)
		fmt.Fprintf(c.Log, "kill %d after %s: %d ok transactions before it; first settlement %s after the restart\n",
			k, wait.Round(time.Millisecond), before, rec.Round(time.Millisecond))
	}
	if runErr == nil {
		time.Sleep(c.After)
	}
	res := stopLoad()
	r.Elapsed = time.Since(start)
	srv.stop()
	if runErr != nil {
		return nil, runErr
	}
	if c.History != nil {
		if err := res.History.WriteJSONL(c.History); err != nil {
			return nil, err
		}
	}

	// The final read and the checkers, on the store the server left.
	rep, err := finalRead(ctx, c.DSN, res, since)
	if err != nil {
		return nil, err
	}
	rep.Kills, rep.Recovery, rep.Elapsed = r.Kills, r.Recovery, r.Elapsed
	return rep, nil
}

// startPlatform migrates dsn and seeds the demo into it, here, then starts
// command + "serve" on it as a child process on a free loopback port,
// logging to <dir>/server.log, and waits until it is ready.
func startPlatform(ctx context.Context, command, env []string, dir, dsn string, recover time.Duration, log io.Writer) (*server, error) {
	mk := make([]byte, 32)
	rand.Read(mk)
	master := hex.EncodeToString(mk)
	cfg := app.Defaults()
	cfg.DataDir, cfg.DB, cfg.MasterKey, cfg.LogLevel, cfg.Face, cfg.PasswordIterations = dir, dsn, master, "error", "off", 1000
	fmt.Fprintf(log, "seeding the demo into %s\n", dir)
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		return nil, err
	}
	_, err = a.Seed(ctx, demo.Build())
	a.Close()
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	srv := &server{command: command, recover: recover, addr: addr, log: logf, env: append(append(os.Environ(), env...),
		"YIBAO_DATA_DIR="+dir, "YIBAO_DB="+dsn, "YIBAO_ADDR="+addr, "YIBAO_MASTER_KEY="+master, "YIBAO_LOG_LEVEL=warn",
		"YIBAO_FACE=off", "YIBAO_PASSWORD_ITERATIONS=1000", "YIBAO_PUBLIC_URL=", "YIBAO_CONFIG=")}
	if err := srv.start(ctx); err != nil {
		srv.close()
		return nil, err
	}
	return srv, nil
}

// finalRead runs the checkers on the store at dsn against a run's
// transactions (since: when the load began, unix µs).
func finalRead(ctx context.Context, dsn string, res *loadgen.Result, since int64) (*Report, error) {
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rep, err := Check(ctx, db, res.Txs, since)
	if err != nil {
		return nil, err
	}
	rep.CountOps(res.History)
	return rep, nil
}

type server struct {
	command []string
	recover time.Duration
	addr    string
	env     []string
	log     *os.File
	cmd     *exec.Cmd
	done    chan struct{}
}

func (s *server) start(ctx context.Context) error {
	cmd := exec.Command(s.command[0], append(append([]string{}, s.command[1:]...), "serve")...)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(s.recover)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("the server exited at start; see server.log in the data folder")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return errors.New("the server did not become ready")
}

// close kills the server if it still runs and closes its log.
func (s *server) close() {
	s.kill()
	s.log.Close()
}

// kill ends the server with SIGKILL: no shutdown, no flush.
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// stop ends the server cleanly (SIGTERM), or kills it after 15 s.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		s.cmd = nil
	case <-time.After(15 * time.Second):
		s.kill()
	}
}

// Summary is the report's figures in one block.
func (r *Report) Summary() string {
	var p50, p99, max time.Duration
	if len(r.Recovery) > 0 {
		p50, p99 = loadgen.Percentile(r.Recovery, .5), loadgen.Percentile(r.Recovery, .99)
		for _, d := range r.Recovery {
			max = maxDur(max, d)
		}
	}
	return fmt.Sprintf("kills %d in %s; recovery (restart → first settlement) p50 %s, p99 %s, max %s\n%s",
		r.Kills, r.Elapsed.Round(time.Second), p50.Round(time.Millisecond), p99.Round(time.Millisecond), max.Round(time.Millisecond),
		r.Checks())
}

// Checks is the checkers' figures and the verdict, the part of the
// summary every run shares.
func (r *Report) Checks() string {
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	return fmt.Sprintf(`transactions %d: %d ok, %d fail, %d info; calls %d: %d ok, %d fail, %d info
acknowledged %d, found %d, lost %d, unlogged %d, acknowledged-then-voided %d
phantom %d, info resolved present %d / absent %d, partial settlements %d, duplicate effects %d
trial balance diff %d fen, negative-balance violations %d, ledger violations %d, accumulator mismatches %d of %d rows (replay of %d settlements)
%s`,
		r.Transactions, r.TxOk, r.TxFail, r.TxInfo, r.Ops, r.OpsOk, r.OpsFail, r.OpsInfo,
		r.AckedOk, r.FoundOk, r.Lost, r.Unlogged, r.Voided,
		r.Phantom, r.InfoPresent, r.InfoAbsent, r.Partial, r.Duplicate,
		r.TrialBalance, r.NegativeBalance, len(r.LedgerViolations), r.AccumulatorMismatches, r.AccumulatorRows, r.Settlements, verdict)
}

// NotOkLines lists the transactions not ok by step, outcome and code.
func (r *Report) NotOkLines() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(r.NotOk)) {
		out = append(out, fmt.Sprintf("%6d  %s", r.NotOk[k], k))
	}
	return out
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
