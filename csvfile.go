package yibao

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// CSVRecord is one data line of an uploaded CSV file with its 1-based
// line number, for line-numbered errors.
type CSVRecord struct {
	Line   int
	Fields []string
}

// ReadCSV reads an uploaded CSV file whose first line must be exactly
// header (an Excel BOM is allowed), with every field trimmed. Errors are
// malformed_request naming the line, too_large above maxRows rows, and
// invalid_argument for a file with a header but no rows.
func ReadCSV(r io.Reader, header []string, maxRows int) ([]CSVRecord, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(header)
	first, err := cr.Read()
	if err == io.EOF {
		return nil, Errorf(CodeMalformed, "the CSV file is empty; the first line must be the header %s", strings.Join(header, ","))
	}
	if err != nil {
		return nil, CSVError(err)
	}
	if len(first) > 0 {
		first[0] = strings.TrimPrefix(first[0], "\ufeff") // Excel's BOM
	}
	if strings.Join(first, ",") != strings.Join(header, ",") {
		return nil, &Error{Code: CodeMalformed, Message: "line 1: the header must be exactly " + strings.Join(header, ","),
			Issues: []Issue{{Line: 1, Message: "expected header " + strings.Join(header, ",")}}}
	}
	var out []CSVRecord
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, CSVError(err)
		}
		if len(out) >= maxRows {
			return nil, Errorf(CodeTooLarge, "at most %d rows per file; split the file", maxRows)
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		out = append(out, CSVRecord{Line: line, Fields: rec})
	}
	if len(out) == 0 {
		return nil, Errorf(CodeInvalid, "the CSV file has a header but no rows")
	}
	return out, nil
}

// CSVError maps an encoding/csv error to a malformed_request naming the
// line.
func CSVError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		return &Error{Code: CodeMalformed, Message: fmt.Sprintf("line %d: %s", pe.Line, msg), Issues: []Issue{{Line: pe.Line, Message: msg}}}
	}
	return Wrap(CodeMalformed, err, "the CSV file could not be read")
}
