package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"yibao/sqlstore"
)

// yibao pg: PostgreSQL operations. backup and restore wrap pg_dump -Fc and
// pg_restore with what an operator would otherwise forget: a manifest of
// row counts and ledger totals taken in the very snapshot pg_dump copies,
// a refusal to restore over existing tables, ANALYZE afterwards, and a
// check of the restored database against the manifest. partitions runs
// the monthly-partition maintenance the server runs daily.
// docs/operations.md, "Backup and restore" and "Monthly partitions".

func runPG(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := errors.New("usage: yibao pg backup --dsn DSN --out FILE | restore --dsn DSN --in FILE | partitions [--dsn DSN]")
	if len(args) == 0 {
		return usage
	}
	switch args[0] {
	case "backup":
		return runPGBackup(ctx, args[1:], stdout, stderr)
	case "restore":
		return runPGRestore(ctx, args[1:], stdout, stderr)
	case "partitions":
		return runPGPartitions(ctx, args[1:], stdout, stderr)
	}
	return usage
}

// pgFlags is the flag set of a pg subcommand with --dsn (default
// $YIBAO_DB) and --pg-bin.
func pgFlags(name string, stderr io.Writer) (*flag.FlagSet, *string, *string) {
	fs := flag.NewFlagSet("yibao pg "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", os.Getenv("YIBAO_DB"), "the database, postgres://… (default $YIBAO_DB); connect directly, not through a PgBouncer in transaction mode")
	bin := fs.String("pg-bin", "", "the folder of pg_dump and pg_restore (default: found on PATH)")
	return fs, dsn, bin
}

// pgManifest describes a backup: taken in the snapshot pg_dump copied, so
// a restore can be checked against it row for row.
type pgManifest struct {
	Format     int              `json:"format"` // 1
	TakenAt    time.Time        `json:"taken_at"`
	Database   string           `json:"database"`
	Schema     string           `json:"schema"`      // where the platform's tables are
	SchemaOnly bool             `json:"schema_only"` // the dump holds only that schema (the DSN set search_path)
	Server     string           `json:"server_version"`
	Migration  int              `json:"migration"`
	Tables     map[string]int64 `json:"tables"` // rows per table; a partitioned table counts once, by its parent
	Ledger     ledgerTotals     `json:"ledger"`
}

type ledgerTotals struct {
	Accounts       int64 `json:"accounts"`
	Transfers      int64 `json:"transfers"`
	DebitsPosted   int64 `json:"debits_posted"`
	CreditsPosted  int64 `json:"credits_posted"`
	DebitsPending  int64 `json:"debits_pending"`
	CreditsPending int64 `json:"credits_pending"`
}

func (m *pgManifest) rows() (n int64) {
	for _, c := range m.Tables {
		n += c
	}
	return n
}

func manifestPath(dump string) string { return dump + ".manifest.json" }

// libpqTarget turns a yibao DSN into what pg_dump and pg_restore accept: a
// URI without the pgx pool settings and runtime parameters libpq would
// refuse, the password moved to the environment (not the process list),
// and the schema named by search_path.
type libpqTarget struct {
	conninfo string
	env      []string
	database string
	schema   string // "" when the DSN does not set search_path
}

// libpqParams are the URI parameters passed on to libpq.
var libpqParams = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "passfile": true, "connect_timeout": true,
	"application_name": true, "options": true, "sslmode": true, "sslcert": true, "sslkey": true, "sslpassword": true,
	"sslrootcert": true, "sslcrl": true, "sslsni": true, "requirepeer": true, "ssl_min_protocol_version": true,
	"ssl_max_protocol_version": true, "gssencmode": true, "krbsrvname": true, "channel_binding": true, "service": true,
	"target_session_attrs": true, "keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
}

func parseTarget(dsn string) (*libpqTarget, error) {
	if !sqlstore.IsPostgresDSN(dsn) {
		return nil, errors.New("--dsn must be a postgres:// URL (or set YIBAO_DB to one)")
	}
	if _, err := sqlstore.PoolConfig(dsn); err != nil {
		return nil, err // pgx's errors do not repeat the password
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.New("--dsn: not a URL")
	}
	t := &libpqTarget{env: os.Environ(), database: strings.TrimPrefix(u.Path, "/")}
	if pw, ok := u.User.Password(); ok {
		t.env = append(t.env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	kept := url.Values{}
	for k, v := range u.Query() {
		switch {
		case libpqParams[k]:
			kept[k] = v
		case k == "search_path" && len(v) > 0:
			t.schema = strings.Trim(strings.TrimSpace(strings.Split(v[0], ",")[0]), `"`)
		}
	}
	if d := kept.Get("dbname"); d != "" {
		t.database = d
	}
	u.RawQuery = kept.Encode()
	t.conninfo = u.String()
	return t, nil
}

// pgTool finds pg_dump or pg_restore.
func pgTool(bin, name string) (string, error) {
	if bin != "" {
		p := filepath.Join(bin, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install the PostgreSQL client tools (the server's major version or newer) or pass --pg-bin", name)
	}
	return p, nil
}

// runTool runs a PostgreSQL client tool and returns its error output with
// its failure.
func runTool(ctx context.Context, env []string, path string, args ...string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(path), err, strings.TrimSpace(errOut.String()))
	}
	return nil
}

// connect opens one pgx connection to dsn (pool settings ignored).
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := sqlstore.PoolConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg.ConnConfig)
}

func runPGBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dsn, bin := pgFlags("backup", stderr)
	out := fs.String("out", "", "the backup file to write (pg_dump's custom format); its manifest goes to FILE.manifest.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: yibao pg backup --dsn DSN --out FILE")
	}
	t, err := parseTarget(*dsn)
	if err != nil {
		return err
	}
	dump, err := pgTool(*bin, "pg_dump")
	if err != nil {
		return err
	}
	start := time.Now()
	conn, err := connect(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// One snapshot for the manifest and for pg_dump: the transaction that
	// exports it stays open until pg_dump is done.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return fmt.Errorf("export snapshot: %w", err)
	}
	m, err := takeManifest(ctx, tx)
	if err != nil {
		return err
	}
	m.Database, m.SchemaOnly = t.database, t.schema != ""
	counted := time.Since(start)
	partial := *out + ".partial"
	dargs := []string{"--format=custom", "--snapshot=" + snapshot, "--no-password", "--file=" + partial, "--dbname=" + t.conninfo}
	if t.schema != "" {
		dargs = append(dargs, "--schema="+t.schema)
	}
	if err := runTool(ctx, t.env, dump, dargs...); err != nil {
		os.Remove(partial)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	// A backup holds everything the database does (sealed, but still).
	if err := os.Chmod(partial, 0o600); err != nil {
		return err
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := writeSynced(manifestPath(*out), append(mj, '\n')); err != nil {
		return err
	}
	if err := syncFile(partial); err != nil {
		return err
	}
	if err := os.Rename(partial, *out); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	what := "database " + m.Database
	if m.SchemaOnly {
		what += ", schema " + m.Schema
	}
	fmt.Fprintf(stdout, "backed up %s at migration %d: %d tables, %d rows, %d ledger transfers; %d bytes in %s (counting %s)\n",
		what, m.Migration, len(m.Tables), m.rows(), m.Ledger.Transfers, st.Size(), time.Since(start).Round(time.Millisecond), counted.Round(time.Millisecond))
	fmt.Fprintf(stdout, "  %s\n  %s\n", *out, manifestPath(*out))
	return nil
}

// querier is what a manifest is read through: a transaction or a
// connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// takeManifest counts the rows of every table in the current schema and
// sums the ledger.
func takeManifest(ctx context.Context, q querier) (*pgManifest, error) {
	m := &pgManifest{Format: 1, TakenAt: time.Now().UTC(), Tables: map[string]int64{}}
	if err := q.QueryRow(ctx, `SELECT current_schema(), current_setting('server_version')`).Scan(&m.Schema, &m.Server); err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, name := range tables {
		var n int64
		if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM `+pgx.Identifier{m.Schema, name}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		m.Tables[name] = n
	}
	if _, ok := m.Tables["schema_migrations"]; !ok {
		return nil, fmt.Errorf("schema %s has no yibao tables (no schema_migrations): is search_path right?", m.Schema)
	}
	if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&m.Migration); err != nil {
		return nil, err
	}
	l := &m.Ledger
	if _, ok := m.Tables["ledger_accounts"]; ok {
		if err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_posted), 0),
			COALESCE(SUM(debits_pending), 0), COALESCE(SUM(credits_pending), 0) FROM ledger_accounts`).Scan(
			&l.Accounts, &l.DebitsPosted, &l.CreditsPosted, &l.DebitsPending, &l.CreditsPending); err != nil {
			return nil, err
		}
		l.Transfers = m.Tables["ledger_transfers"]
	}
	return m, nil
}

func runPGRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dsn, bin := pgFlags("restore", stderr)
	in := fs.String("in", "", "the backup file (from yibao pg backup or pg_dump -Fc)")
	jobs := fs.Int("jobs", 1, "parallel pg_restore jobs; 1 restores in a single transaction (all or nothing)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || fs.NArg() > 0 || *jobs < 1 {
		return errors.New("usage: yibao pg restore --dsn DSN --in FILE [--jobs N]")
	}
	t, err := parseTarget(*dsn)
	if err != nil {
		return err
	}
	restore, err := pgTool(*bin, "pg_restore")
	if err != nil {
		return err
	}
	if _, err := os.Stat(*in); err != nil {
		return err
	}
	var m *pgManifest
	if b, err := os.ReadFile(manifestPath(*in)); err == nil {
		m = &pgManifest{}
		if err := json.Unmarshal(b, m); err != nil || m.Format != 1 {
			return fmt.Errorf("%s: not a backup manifest (%v)", manifestPath(*in), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	} else {
		fmt.Fprintf(stderr, "no manifest %s: the restored database will not be checked against the backup\n", manifestPath(*in))
	}
	start := time.Now()
	conn, err := connect(ctx, *dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Only into an empty place: pg_restore over existing tables would fail
	// half-way or mix two databases.
	schema := "public"
	if m != nil {
		schema = m.Schema
	}
	var taken int
	if err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, schema).Scan(&taken); err != nil {
		return err
	}
	if taken > 0 {
		return fmt.Errorf("database %s already has %d tables in schema %s: restore into an empty database", t.database, taken, schema)
	}
	rargs := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--dbname=" + t.conninfo}
	if *jobs > 1 {
		rargs = append(rargs, fmt.Sprintf("--jobs=%d", *jobs))
	} else {
		rargs = append(rargs, "--single-transaction")
	}
	if err := runTool(ctx, t.env, restore, append(rargs, *in)...); err != nil {
		return err
	}
	restored := time.Since(start)
	// pg_restore brings no planner statistics.
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s into database %s in %s (ANALYZE %s)\n", *in, t.database, restored.Round(time.Millisecond),
		(time.Since(start) - restored).Round(time.Millisecond))
	if m == nil {
		return nil
	}
	if _, err := conn.Exec(ctx, `SELECT set_config('search_path', $1, false)`, pgx.Identifier{m.Schema}.Sanitize()); err != nil {
		return err
	}
	got, err := takeManifest(ctx, conn)
	if err != nil {
		return err
	}
	if diffs := compareManifests(m, got); len(diffs) > 0 {
		return fmt.Errorf("the restored database differs from the backup's manifest:\n  %s", strings.Join(diffs, "\n  "))
	}
	fmt.Fprintf(stdout, "checked against the manifest: migration %d, %d tables, %d rows; ledger: %d accounts, %d transfers, posted debits = credits = %d fen\n",
		got.Migration, len(got.Tables), got.rows(), got.Ledger.Accounts, got.Ledger.Transfers, got.Ledger.DebitsPosted)
	if m.SchemaOnly {
		fmt.Fprintf(stdout, "the tables are in schema %s: point the servers at it with search_path=%s in their DSN\n", m.Schema, m.Schema)
	}
	return nil
}

// compareManifests lists how got differs from want.
func compareManifests(want, got *pgManifest) []string {
	var diffs []string
	if want.Migration != got.Migration {
		diffs = append(diffs, fmt.Sprintf("migration %d, backup %d", got.Migration, want.Migration))
	}
	names := map[string]bool{}
	for n := range want.Tables {
		names[n] = true
	}
	for n := range got.Tables {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		w, inW := want.Tables[n]
		g, inG := got.Tables[n]
		switch {
		case !inG:
			diffs = append(diffs, "table "+n+" is missing")
		case !inW:
			diffs = append(diffs, "table "+n+" is not in the backup")
		case w != g:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, backup %d", n, g, w))
		}
	}
	if want.Ledger != got.Ledger {
		diffs = append(diffs, fmt.Sprintf("ledger %+v, backup %+v", got.Ledger, want.Ledger))
	}
	if got.Ledger.DebitsPosted != got.Ledger.CreditsPosted || got.Ledger.DebitsPending != got.Ledger.CreditsPending {
		diffs = append(diffs, fmt.Sprintf("ledger out of balance: %+v", got.Ledger))
	}
	return diffs
}

func runPGPartitions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, dsn, _ := pgFlags("partitions", stderr)
	ahead := fs.Int("months-ahead", sqlstore.PartitionMonthsAhead, "months after the current one to have partitions for")
	move := fs.Bool("move", false, "first move rows waiting in the DEFAULT partitions into partitions of their months (a maintenance window: see docs/operations.md)")
	asJSON := fs.Bool("json", false, "print the partitions as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !sqlstore.IsPostgresDSN(*dsn) || fs.NArg() > 0 || *ahead < 0 {
		return errors.New("usage: yibao pg partitions --dsn postgres://… [--months-ahead N] [--move] [--json]")
	}
	db, err := sqlstore.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	var moved []string
	if *move {
		if moved, err = sqlstore.MoveDefaultRows(ctx, db); err != nil {
			return err
		}
	}
	made, ensureErr := sqlstore.EnsurePartitions(ctx, db, time.Now(), *ahead)
	if ensureErr != nil && !errors.Is(ensureErr, sqlstore.ErrRowsInDefault) {
		return ensureErr
	}
	parts, err := sqlstore.Partitions(ctx, db)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(map[string]any{"moved": moved, "created": made, "partitions": parts}); err != nil {
			return err
		}
		return ensureErr
	}
	if *move {
		fmt.Fprintf(stdout, "moved the DEFAULT partitions' rows into %d new partitions %v\n", len(moved), moved)
	}
	fmt.Fprintf(stdout, "created %d partitions in %s\n", len(made), time.Since(start).Round(time.Millisecond))
	for _, p := range parts {
		rows := "not analysed yet"
		if p.Rows >= 0 {
			rows = fmt.Sprintf("~%d rows", p.Rows)
		}
		fmt.Fprintf(stdout, "  %-32s %-52s %s\n", p.Name, p.Bound, rows)
	}
	return ensureErr
}

// writeSynced writes a file through a temporary name, synced, then renamed.
func writeSynced(path string, b []byte) error {
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
