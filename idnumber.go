package yibao

import (
	"strings"
	"time"
)

// ID-number checks follow GB 11643-1999 (公民身份号码): six digits of the
// registering division, eight of the birth date, three of sequence (odd for
// men, even for women) and one ISO 7064 MOD 11-2 check character.

var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idCheckChars = "10X98765432"

// IDCheckChar returns the GB 11643 check character for the first 17 digits.
func IDCheckChar(first17 string) byte {
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return idCheckChars[sum%11]
}

// IDNumber is a parsed, valid resident ID number.
type IDNumber struct {
	Number    string    // 18 characters, upper-case X
	Division  string    // first six digits
	BirthDate time.Time // UTC midnight
	Gender    Gender
}

// ParseIDNumber validates an 18-character resident ID number: digits, a real
// birth date not in the future relative to today, and the check character.
// A lower-case x is accepted and normalised.
func ParseIDNumber(s string, today time.Time) (IDNumber, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != 18 {
		return IDNumber{}, FieldError("id_number", "must be 18 characters (GB 11643)")
	}
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return IDNumber{}, FieldError("id_number", "characters 1–17 must be digits")
		}
	}
	if c := s[17]; !(c >= '0' && c <= '9') && c != 'X' {
		return IDNumber{}, FieldError("id_number", "the last character must be a digit or X")
	}
	birth, err := time.Parse("20060102", s[6:14])
	if err != nil || birth.Year() < 1900 || birth.After(today) {
		return IDNumber{}, FieldError("id_number", "characters 7–14 must be a real birth date")
	}
	if IDCheckChar(s) != s[17] {
		return IDNumber{}, FieldError("id_number", "check character does not match (GB 11643)")
	}
	g := GenderMale
	if (s[16]-'0')%2 == 0 {
		g = GenderFemale
	}
	return IDNumber{Number: s, Division: s[:6], BirthDate: birth, Gender: g}, nil
}

// MaskID shows the division and the last four characters only.
func MaskID(s string) string {
	if len(s) < 10 {
		return strings.Repeat("*", len(s))
	}
	return s[:6] + strings.Repeat("*", len(s)-10) + s[len(s)-4:]
}

// MaskName keeps the family name (first character) only.
func MaskName(s string) string {
	r := []rune(s)
	if len(r) <= 1 {
		return "*"
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

// MaskPhone keeps the first three and last four digits.
func MaskPhone(s string) string {
	if len(s) < 8 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + strings.Repeat("*", len(s)-7) + s[len(s)-4:]
}

// AgeOn is the age in whole years, on date, of someone born on birth (both
// YYYY-MM-DD): the birthday counts from its own day. 0 if either date is
// malformed or birth is later.
func AgeOn(birth, date string) int {
	b, err1 := time.Parse(time.DateOnly, birth)
	d, err2 := time.Parse(time.DateOnly, date)
	if err1 != nil || err2 != nil {
		return 0
	}
	age := d.Year() - b.Year()
	if d.Month() < b.Month() || (d.Month() == b.Month() && d.Day() < b.Day()) {
		age--
	}
	return max(age, 0)
}
