package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"

	"gopkg.in/yaml.v3"
)

// OpenAPIYAML is the API description, written by hand next to the code and
// checked against the route table by a test.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

var (
	openapiOnce sync.Once
	openapiJSON []byte
	openapiErr  error
)

// OpenAPIJSON returns the description as JSON.
func OpenAPIJSON() ([]byte, error) {
	openapiOnce.Do(func() {
		var doc any
		if openapiErr = yaml.Unmarshal(OpenAPIYAML, &doc); openapiErr != nil {
			return
		}
		openapiJSON, openapiErr = json.MarshalIndent(doc, "", "  ")
	})
	return openapiJSON, openapiErr
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	b, err := OpenAPIJSON()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
