package yibao

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

func TestParseIDNumber(t *testing.T) {
	var cases []struct {
		Note   string `json:"note"`
		ID     string `json:"id"`
		OK     bool   `json:"ok"`
		Birth  string `json:"birth"`
		Gender Gender `json:"gender"`
		Field  string `json:"field"`
	}
	b, err := os.ReadFile("testdata/id_numbers.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	today := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.Note, func(t *testing.T) {
			got, err := ParseIDNumber(c.ID, today)
			if !c.OK {
				if err == nil {
					t.Fatalf("accepted %q", c.ID)
				}
				if ErrorCode(err) != CodeInvalid {
					t.Fatalf("code = %s, want %s", ErrorCode(err), CodeInvalid)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected %q: %v", c.ID, err)
			}
			if got.BirthDate.Format(DateLayout) != c.Birth || got.Gender != c.Gender {
				t.Fatalf("got birth %s gender %s, want %s %s", got.BirthDate.Format(DateLayout), got.Gender, c.Birth, c.Gender)
			}
		})
	}
}

func TestMasks(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{MaskID("370102198507160029"), "370102********0029"},
		{MaskName("张三丰"), "张**"},
		{MaskName("李"), "*"},
		{MaskPhone("13812345678"), "138****5678"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	for _, c := range []struct {
		s1, e1, s2, e2 string
		want           bool
	}{
		{"2024-01-01", "2024-12-31", "2025-01-01", "", false},
		{"2024-01-01", "2024-12-31", "2024-12-31", "", true},
		{"2024-01-01", "", "2030-01-01", "2030-02-01", true},
		{"2025-01-01", "", "2024-01-01", "2024-06-30", false},
	} {
		if got := Overlaps(c.s1, c.e1, c.s2, c.e2); got != c.want {
			t.Errorf("Overlaps(%s–%s, %s–%s) = %v", c.s1, c.e1, c.s2, c.e2, got)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c] {
			t.Errorf("duplicate code %s", c)
		}
		seen[c] = true
	}
	if ErrorCode(os.ErrNotExist) != CodeInternal || ErrorMessage(os.ErrNotExist) != "internal error" {
		t.Error("foreign errors must be internal with a generic message")
	}
}

func TestAgeOn(t *testing.T) {
	for _, c := range []struct {
		birth, date string
		want        int
	}{
		{"1980-06-15", "2026-06-14", 45},
		{"1980-06-15", "2026-06-15", 46},
		{"2000-03-01", "2026-02-28", 25}, // leap-year birth, non-leap date: the day-of-year would mislead
		{"2000-03-01", "2026-03-01", 26},
		{"2000-02-29", "2026-02-28", 25},
		{"2030-01-01", "2026-01-01", 0},
		{"bad", "2026-01-01", 0},
	} {
		if got := AgeOn(c.birth, c.date); got != c.want {
			t.Errorf("AgeOn(%s, %s) = %d, want %d", c.birth, c.date, got, c.want)
		}
	}
}
