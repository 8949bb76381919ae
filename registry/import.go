package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/money"
	"yibao/sqlstore"
)

// ImportKind names what a CSV import loads.
type ImportKind string

// Import kinds and their exact header rows.
const (
	ImportCatalog ImportKind = "catalog"
	ImportPersons ImportKind = "persons"
)

// CatalogCSVHeader and PersonsCSVHeader are the required header rows.
var (
	CatalogCSVHeader = []string{"code", "name", "kind", "class", "self_pay_ratio", "price_cap", "unit", "spec", "category", "restriction", "valid_from", "valid_to"}
	PersonsCSVHeader = []string{"psn_no", "id_number", "name", "phone", "category", "admdvs", "insutype", "start_date", "end_date"}
)

// MaxImportRows bounds one import; larger files should be split.
const MaxImportRows = 200_000

// maxReportedIssues bounds the line errors kept in a failed import.
const maxReportedIssues = 100

// ImportJob is the state of one import, readable while it runs.
type ImportJob struct {
	ID         string        `json:"id"`
	Kind       ImportKind    `json:"kind"`
	Status     string        `json:"status"` // running | succeeded | failed
	Phase      string        `json:"phase"`  // reading | validating | writing | done
	Total      int           `json:"total"`
	Done       int           `json:"done"`
	Imported   int           `json:"imported"` // rows inserted or updated
	Errors     []yibao.Issue `json:"errors"`
	CreatedBy  string        `json:"created_by"`
	CreatedAt  time.Time     `json:"created_at"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
}

type jobTable struct {
	mu   sync.Mutex
	jobs map[string]*ImportJob
}

func newJobTable() *jobTable { return &jobTable{jobs: map[string]*ImportJob{}} }

func (t *jobTable) update(id string, f func(j *ImportJob)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if j := t.jobs[id]; j != nil {
		f(j)
	}
}

func (t *jobTable) get(id string) (ImportJob, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j, ok := t.jobs[id]
	if !ok {
		return ImportJob{}, false
	}
	c := *j
	c.Errors = append([]yibao.Issue{}, j.Errors...)
	return c, true
}

// Progress receives an import's progress; it must be cheap.
type Progress func(phase string, done, total int)

// StartImport begins an import in the background and returns its job; poll
// ImportJob for progress. The data is read fully before this returns, so
// the caller may close r. Administrators only.
func (s *Service) StartImport(ctx context.Context, kind ImportKind, r io.Reader) (*ImportJob, error) {
	p := yibao.PrincipalFrom(ctx)
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	records, err := readCSV(kind, r)
	if err != nil {
		return nil, err
	}
	job := &ImportJob{ID: newID("imp_"), Kind: kind, Status: "running", Phase: "validating", Total: len(records),
		Errors: []yibao.Issue{}, CreatedBy: p.ID(), CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	s.jobs.mu.Lock()
	s.jobs.jobs[job.ID] = job
	s.jobs.mu.Unlock()
	snapshot, _ := s.jobs.get(job.ID)
	bg := yibao.WithPrincipal(context.WithoutCancel(ctx), p)
	go func() {
		n, err := s.importRecords(bg, kind, records, func(phase string, done, total int) {
			s.jobs.update(job.ID, func(j *ImportJob) { j.Phase, j.Done, j.Total = phase, done, total })
		})
		s.finishJob(bg, job.ID, n, err)
	}()
	return &snapshot, nil
}

func (s *Service) finishJob(ctx context.Context, id string, n int, err error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	s.jobs.update(id, func(j *ImportJob) {
		j.FinishedAt = &now
		j.Phase = "done"
		if err == nil {
			j.Status, j.Imported, j.Done = "succeeded", n, j.Total
			return
		}
		j.Status = "failed"
		var ye *yibao.Error
		if errors.As(err, &ye) && len(ye.Issues) > 0 {
			j.Errors = ye.Issues
		} else {
			j.Errors = []yibao.Issue{{Message: yibao.ErrorMessage(err)}}
		}
	})
	j, _ := s.jobs.get(id)
	errs, _ := json.Marshal(j.Errors)
	// The job record is kept for history; losing it does not lose data.
	_ = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, e := tx.Exec(ctx, `INSERT INTO import_jobs (id, kind, status, total, done, imported, errors, created_by, created_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, j.ID, string(j.Kind), j.Status, j.Total, j.Done, j.Imported, string(errs),
			j.CreatedBy, micros(j.CreatedAt), micros(now))
		return e
	})
}

// ImportJob returns a job: live state while it runs (on this node), the
// stored record after. Errors: not_found.
func (s *Service) ImportJob(ctx context.Context, id string) (*ImportJob, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if j, ok := s.jobs.get(id); ok {
		return &j, nil
	}
	var j ImportJob
	var errs string
	var created, finished int64
	err := s.db.QueryRow(ctx, `SELECT id, kind, status, total, done, imported, errors, created_by, created_at, finished_at
		FROM import_jobs WHERE id = ?`, id).Scan(&j.ID, &j.Kind, &j.Status, &j.Total, &j.Done, &j.Imported, &errs, &j.CreatedBy, &created, &finished)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "import job %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	j.Phase = "done"
	j.CreatedAt = fromMicros(created)
	f := fromMicros(finished)
	j.FinishedAt = &f
	if err := json.Unmarshal([]byte(errs), &j.Errors); err != nil {
		return nil, err
	}
	return &j, nil
}

// Import runs an import to the end in the caller's goroutine, reporting
// progress. It is all or nothing: on any bad line nothing is written and
// the error lists every bad line (up to 100) with its number. It returns
// the number of rows written. Administrators only.
func (s *Service) Import(ctx context.Context, kind ImportKind, r io.Reader, progress Progress) (int, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return 0, err
	}
	records, err := readCSV(kind, r)
	if err != nil {
		return 0, err
	}
	return s.importRecords(ctx, kind, records, progress)
}

type csvRecord = yibao.CSVRecord

func readCSV(kind ImportKind, r io.Reader) ([]csvRecord, error) {
	switch kind {
	case ImportCatalog:
		return yibao.ReadCSV(r, CatalogCSVHeader, MaxImportRows)
	case ImportPersons:
		return yibao.ReadCSV(r, PersonsCSVHeader, MaxImportRows)
	}
	return nil, yibao.FieldError("kind", "must be catalog or persons")
}

// issueList collects line errors up to a bound.
type issueList struct{ items []yibao.Issue }

func (l *issueList) add(line int, err error) {
	if len(l.items) >= maxReportedIssues {
		return
	}
	is := yibao.Issue{Line: line, Message: yibao.ErrorMessage(err)}
	var ye *yibao.Error
	if errors.As(err, &ye) {
		is.Field = ye.Field
	}
	l.items = append(l.items, is)
}

func (l *issueList) err(total int) error {
	if len(l.items) == 0 {
		return nil
	}
	first := l.items[0]
	return &yibao.Error{Code: yibao.CodeInvalid, Issues: l.items,
		Message: fmt.Sprintf("%d bad line(s), nothing imported; first: line %d: %s", len(l.items), first.Line, first.Message)}
}

func (s *Service) importRecords(ctx context.Context, kind ImportKind, records []csvRecord, progress Progress) (int, error) {
	if progress == nil {
		progress = func(string, int, int) {}
	}
	switch kind {
	case ImportCatalog:
		return s.importCatalog(ctx, records, progress)
	default:
		return s.importPersons(ctx, records, progress)
	}
}

const progressEvery = 200

func parseCatalogRecord(f []string) (yibao.CatalogItem, error) {
	it := yibao.CatalogItem{Code: f[0], Name: f[1], Kind: yibao.ItemKind(f[2]), Unit: f[6], Spec: f[7], Category: f[8],
		Restriction: f[9], ValidFrom: f[10], ValidTo: f[11]}
	class, ok := yibao.ParseItemClass(f[3])
	if !ok {
		return it, yibao.FieldError("class", "must be 甲, 乙 or 丙 (or A, B, C)")
	}
	it.Class = class
	if f[4] != "" {
		r, err := money.ParseRatio(f[4])
		if err != nil {
			return it, yibao.FieldError("self_pay_ratio", "must be a ratio such as 0.1 or 10%%")
		}
		it.SelfPayRatio = r
	}
	if f[5] != "" {
		v, err := money.ParseYuan(f[5])
		if err != nil {
			return it, yibao.FieldError("price_cap", "must be an amount in yuan such as 12.50")
		}
		it.PriceCap = &v
	}
	return it, it.Validate()
}

func (s *Service) importCatalog(ctx context.Context, records []csvRecord, progress Progress) (int, error) {
	items := make([]yibao.CatalogItem, 0, len(records))
	var issues issueList
	seen := map[string]int{}
	for i, rec := range records {
		it, err := parseCatalogRecord(rec.Fields)
		if err == nil {
			if prev, dup := seen[it.Code]; dup {
				err = yibao.FieldError("code", "%s appears again (first on line %d)", it.Code, prev)
			}
			seen[it.Code] = rec.Line
		}
		if err != nil {
			issues.add(rec.Line, err)
		}
		items = append(items, it)
		if i%progressEvery == 0 {
			progress("validating", i, len(records))
		}
	}
	if err := issues.err(len(records)); err != nil {
		return 0, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		for i := range items {
			if _, err := s.writeCatalogItem(ctx, tx, &items[i], true); err != nil {
				return fmt.Errorf("line %d: %w", records[i].Line, err)
			}
			if i%progressEvery == 0 {
				progress("writing", i, len(items))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	progress("done", len(items), len(items))
	return len(items), nil
}

func (s *Service) importPersons(ctx context.Context, records []csvRecord, progress Progress) (int, error) {
	type row struct {
		line int
		p    yibao.Person
		c    yibao.Coverage
	}
	rows := make([]row, 0, len(records))
	var issues issueList
	first := map[string]row{} // psn_no → first row naming the person
	today := s.today()
	for i, rec := range records {
		f := rec.Fields
		p := yibao.Person{PsnNo: f[0], IDNumber: f[1], Name: f[2], Phone: f[3], Category: yibao.PersonCategory(f[4]), Admdvs: f[5]}
		c := yibao.Coverage{PsnNo: f[0], Insutype: f[6], Admdvs: f[5], StartDate: f[7], EndDate: f[8]}
		err := p.Validate(today)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			if prev, ok := first[p.PsnNo]; ok {
				q := prev.p
				if q.IDNumber != p.IDNumber || q.Name != p.Name || q.Phone != p.Phone || q.Category != p.Category || q.Admdvs != p.Admdvs {
					err = yibao.FieldError("psn_no", "%s is described differently on line %d", p.PsnNo, prev.line)
				}
				for _, r := range rows {
					if err == nil && r.p.PsnNo == p.PsnNo && r.c.Insutype == c.Insutype && yibao.Overlaps(r.c.StartDate, r.c.EndDate, c.StartDate, c.EndDate) {
						err = yibao.Errorf(yibao.CodeConflict, "coverage of scheme %s overlaps line %d", c.Insutype, r.line)
					}
				}
			} else {
				first[p.PsnNo] = row{line: rec.Line, p: p}
			}
		}
		if err != nil {
			issues.add(rec.Line, err)
		}
		rows = append(rows, row{line: rec.Line, p: p, c: c})
		if i%progressEvery == 0 {
			progress("validating", i, len(records))
		}
	}
	if err := issues.err(len(records)); err != nil {
		return 0, err
	}
	// Database checks (registered region and scheme, ID number already used,
	// overlap with stored coverage) run inside the one transaction; every
	// failure is collected and the transaction rolled back.
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		created := map[string]bool{}
		for i, r := range rows {
			if !created[r.p.PsnNo] {
				created[r.p.PsnNo] = true
				var existingIndex []byte
				e := tx.QueryRow(ctx, `SELECT id_index FROM persons WHERE psn_no = ?`, r.p.PsnNo).Scan(&existingIndex)
				switch {
				case notFound(e):
					p := r.p
					if err := s.insertPerson(ctx, tx, &p); err != nil {
						issues.add(r.line, err)
						continue
					}
				case e != nil:
					return e
				case string(existingIndex) != string(s.blind(idxIDNumber, r.p.IDNumber)):
					issues.add(r.line, yibao.Errorf(yibao.CodeConflict, "person %s is registered with a different ID number", r.p.PsnNo))
					continue
				}
			}
			c := r.c
			if err := s.insertCoverage(ctx, tx, &c); err != nil {
				var ye *yibao.Error
				if !errors.As(err, &ye) {
					return err
				}
				issues.add(r.line, err)
			}
			if i%progressEvery == 0 {
				progress("writing", i, len(rows))
			}
		}
		return issues.err(len(rows))
	})
	if err != nil {
		return 0, err
	}
	progress("done", len(rows), len(rows))
	return len(rows), nil
}

// ImportBytes is Import over an in-memory file, without progress.
func (s *Service) ImportBytes(ctx context.Context, kind ImportKind, data []byte) (int, error) {
	return s.Import(ctx, kind, strings.NewReader(string(data)), nil)
}
