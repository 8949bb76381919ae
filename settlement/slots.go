package settlement

import (
	"context"
	"fmt"
	"regexp"

	"yibao"
	"yibao/sqlstore"
)

// Slot is one bookable appointment period (号源) of a department.
type Slot struct {
	SlotID        string `json:"slot_id"`
	FixmedinsCode string `json:"fixmedins_code"`
	DeptCode      string `json:"dept_code"`
	DeptName      string `json:"dept_name"`
	DoctorName    string `json:"doctor_name,omitempty"`
	Date          string `json:"date"`
	Start         string `json:"start"`
	End           string `json:"end"`
	Capacity      int    `json:"capacity"`
	Booked        int    `json:"booked"`
	Left          int    `json:"left"`
}

// ScheduleRequest publishes a department's slots for one day.
type ScheduleRequest struct {
	FixmedinsCode string `json:"fixmedins_code"`
	DeptCode      string `json:"dept_code"`
	DeptName      string `json:"dept_name"`
	DoctorName    string `json:"doctor_name,omitempty"`
	Date          string `json:"date"`
	Periods       []struct {
		Start    string `json:"start"`
		End      string `json:"end"`
		Capacity int    `json:"capacity"`
	} `json:"periods"`
}

var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

const slotCols = `slot_id, fixmedins_code, dept_code, dept_name, doctor_name, slot_date, start_time, end_time, capacity, booked`

func scanSlot(sc interface{ Scan(...any) error }) (*Slot, error) {
	var x Slot
	err := sc.Scan(&x.SlotID, &x.FixmedinsCode, &x.DeptCode, &x.DeptName, &x.DoctorName, &x.Date, &x.Start, &x.End, &x.Capacity, &x.Booked)
	x.Left = x.Capacity - x.Booked
	return &x, err
}

// PublishSchedule adds a day's slots for a department of the caller's
// institution.
func (s *Service) PublishSchedule(ctx context.Context, r ScheduleRequest) ([]Slot, error) {
	if _, err := access(ctx, r.FixmedinsCode); err != nil {
		return nil, err
	}
	if !deptRe.MatchString(r.DeptCode) || r.DeptCode == "" || r.DeptName == "" || len(r.DeptName) > 100 || len(r.DoctorName) > 100 {
		return nil, yibao.FieldError("dept_code", "a department needs a code (≤ 30 letters/digits) and a name")
	}
	if !validDate(r.Date) || r.Date < s.today() {
		return nil, yibao.FieldError("date", "want today or a later date YYYY-MM-DD")
	}
	if len(r.Periods) == 0 || len(r.Periods) > 96 {
		return nil, yibao.FieldError("periods", "give 1–96 periods")
	}
	for i, p := range r.Periods {
		if !hhmm.MatchString(p.Start) || !hhmm.MatchString(p.End) || p.End <= p.Start {
			return nil, yibao.FieldError(fmt.Sprintf("periods[%d]", i), "want start < end, both HH:MM")
		}
		if p.Capacity < 1 || p.Capacity > 1000 {
			return nil, yibao.FieldError(fmt.Sprintf("periods[%d].capacity", i), "want 1–1000")
		}
	}
	out := []Slot{}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		for _, p := range r.Periods {
			x := Slot{SlotID: newID("SL"), FixmedinsCode: r.FixmedinsCode, DeptCode: r.DeptCode, DeptName: r.DeptName, DoctorName: r.DoctorName,
				Date: r.Date, Start: p.Start, End: p.End, Capacity: p.Capacity, Left: p.Capacity}
			if _, err := tx.Exec(ctx, `INSERT INTO slots (`+slotCols+`, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
				x.SlotID, x.FixmedinsCode, x.DeptCode, x.DeptName, x.DoctorName, x.Date, x.Start, x.End, x.Capacity, micros(s.now())); err != nil {
				return err
			}
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

// Slots lists an institution's slots of a day (any caller: patients look
// for a free slot), optionally of one department.
func (s *Service) Slots(ctx context.Context, fixmedinsCode, date, dept string) ([]Slot, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	if !validDate(date) {
		return nil, yibao.FieldError("date", "want YYYY-MM-DD")
	}
	q, args := `SELECT `+slotCols+` FROM slots WHERE fixmedins_code = ? AND slot_date = ?`, []any{fixmedinsCode, date}
	if dept != "" {
		q += ` AND dept_code = ?`
		args = append(args, dept)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY dept_code, start_time, slot_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Slot{}
	for rows.Next() {
		x, err := scanSlot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *x)
	}
	return out, rows.Err()
}

// bookSlot takes one place of a slot for a new outpatient visit; the
// visit takes the slot's department. A full slot is a conflict.
func (s *Service) bookSlot(ctx context.Context, tx *sqlstore.Tx, slotID string, v *Visit) error {
	x, err := scanSlot(tx.QueryRow(ctx, `SELECT `+slotCols+` FROM slots WHERE slot_id = ?`, slotID))
	if notFound(err) || (err == nil && x.FixmedinsCode != v.FixmedinsCode) {
		return yibao.Errorf(yibao.CodeNotFound, "slot %s not found at %s", slotID, v.FixmedinsCode)
	}
	if err != nil {
		return err
	}
	if x.Date != v.BeginDate {
		return yibao.FieldError("slot_id", "the slot is on %s, the visit on %s", x.Date, v.BeginDate)
	}
	res, err := tx.Exec(ctx, `UPDATE slots SET booked = booked + 1 WHERE slot_id = ? AND booked < capacity`, slotID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return yibao.Errorf(yibao.CodeConflict, "slot %s (%s %s–%s) is fully booked", slotID, x.DeptName, x.Start, x.End)
	}
	v.DeptCode, v.DeptName = x.DeptCode, x.DeptName
	return nil
}

func releaseSlot(ctx context.Context, tx *sqlstore.Tx, slotID string) error {
	_, err := tx.Exec(ctx, `UPDATE slots SET booked = booked - 1 WHERE slot_id = ? AND booked > 0`, slotID)
	return err
}
