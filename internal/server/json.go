package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/silohq/silo/internal/silo"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// decodeJSON reads r's body into v strictly: at most MaxBodyBytes of valid
// UTF-8 holding exactly one JSON value with no unknown fields. Every failure
// is a client error with a code that says which.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return silo.Errorf(silo.EBODYTOOLARGE, "The body must be at most %d bytes.", MaxBodyBytes)
		}
		return silo.Errorf(silo.EINVALIDJSON, "The body could not be read.")
	}
	return DecodeJSON(data, v)
}

// DecodeJSON is decodeJSON's parser, separate so that it can be fuzzed.
func DecodeJSON(data []byte, v any) error {
	if !utf8.Valid(data) || loneSurrogate(data) {
		return silo.Errorf(silo.EINVALIDJSON, "The body must be valid UTF-8.")
	}
	if err := checkKeys(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return silo.Errorf(silo.EINVALIDJSON, "The body must hold a single JSON value.")
	}
	return nil
}

// checkKeys walks the top level of the body: it must be an object (not
// null), and each key one of v's JSON field names, exactly, once and
// written out plainly, with a value that is null only where null means
// something. encoding/json matches names case-insensitively, keeps the last
// of a repeated key and unescapes keys, so a proxy or firewall that reads
// the first "slug" would see another request than Silo, which stored the
// last "Slug" or "sl\u0075g"; and it leaves a field given as null as if it
// were absent, so {"name":null} in a PATCH would answer 200 changing
// nothing.
func checkKeys(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return silo.Errorf(silo.EINVALIDJSON, "The body must be a JSON object.")
	}
	fields := fieldNames(reflect.TypeOf(v))
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string) // the decoder only yields strings as keys
		nullable, known := fields[key]
		switch {
		case !known:
			return silo.Errorf(silo.EINVALIDJSON, "Unknown field %q.", key)
		case !bytes.HasSuffix(data[:dec.InputOffset()], []byte(`"`+key+`"`)):
			return silo.Errorf(silo.EINVALIDJSON, "The field name %q must be written without escapes.", key)
		case seen[key]:
			return silo.Errorf(silo.EINVALIDJSON, "The field %q appears more than once.", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return jsonError(err)
		}
		if !nullable && string(val) == "null" {
			return silo.Errorf(silo.EINVALIDJSON, "The field %q must not be null (leave it out instead).", key)
		}
	}
	return nil
}

// loneSurrogate reports whether a \u escape in data names half of a UTF-16
// surrogate pair without the other half. encoding/json turns such an escape
// into U+FFFD, so the client's string would be stored changed; raw bytes
// that are not UTF-8 are refused the same way. Outside strings a backslash
// is a syntax error the decoder reports.
func loneSurrogate(data []byte) bool {
	hex := func(i int) (rune, bool) {
		if i+6 > len(data) || data[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(data[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // \" \\ \n …: skip the escaped character
			continue
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true // a low half with no high half before it
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := hex(i + 6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6 // the pair's low half
		}
		i += 5
	}
	return false
}

// fieldNames are the JSON names of the fields of the struct t points to,
// each with whether null is a value of it: only for fields that decode
// themselves (nullableTime), where null says "clear it".
func fieldNames(t reflect.Type) map[string]bool {
	if n, ok := fieldNameCache.Load(t); ok {
		return n.(map[string]bool)
	}
	names := map[string]bool{}
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		for f := range t.Elem().Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch name {
			case "-":
				continue
			case "":
				name = f.Name
			}
			names[name] = reflect.PointerTo(f.Type).Implements(unmarshalerType)
		}
	}
	fieldNameCache.Store(t, names)
	return names
}

var (
	fieldNameCache  sync.Map // reflect.Type → map[string]bool
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var se *silo.Error
	switch {
	case errors.As(err, &se): // from a field's own UnmarshalJSON
		return se
	case errors.Is(err, io.EOF):
		return silo.Errorf(silo.EINVALIDJSON, "The body must be a JSON object.")
	case errors.As(err, &syn):
		return silo.Errorf(silo.EINVALIDJSON, "Malformed JSON at byte %d.", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return silo.Errorf(silo.EINVALIDJSON, "The body must be a JSON object.")
		}
		return silo.Errorf(silo.EINVALIDJSON, "The field %q must be %s.", typ.Field, jsonKind(typ.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return silo.Errorf(silo.EINVALIDJSON, "Truncated JSON.")
	}
	// encoding/json reports unknown fields and excessive nesting as plain
	// errors; its message is safe to show.
	return silo.Errorf(silo.EINVALIDJSON, "Invalid JSON: %s.", err.Error())
}

// jsonKind names what a Go type decodes from, for a client: "a string",
// not "a silo.Strategy".
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "of another type"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// parseQuery parses a request's query string, refusing a malformed one
// (r.URL.Query drops what it cannot parse).
func parseQuery(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, silo.Errorf(silo.EINVALID, "Malformed query string.")
	}
	return q, nil
}

// pageFromQuery reads ?limit=&cursor=.
func pageFromQuery(q url.Values) (silo.Page, error) {
	// Given twice, a proxy and Silo could each read another one.
	if len(q["limit"]) > 1 {
		return silo.Page{}, silo.Errorf(silo.EINVALIDLIMIT, "Give limit once.")
	}
	if len(q["cursor"]) > 1 {
		return silo.Page{}, silo.Errorf(silo.EINVALIDCURSOR, "Give cursor once.")
	}
	p := silo.Page{Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || s[0] == '+' || n < 1 || n > silo.MaxPageLimit {
			return p, silo.Errorf(silo.EINVALIDLIMIT, "The limit must be an integer between 1 and %d.", silo.MaxPageLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// timestamp formats times in the API: RFC 3339 in UTC, millisecond precision.
type timestamp time.Time

func (t timestamp) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z07:00"))), nil
}

// nullableTime is an optional RFC 3339 time in a request: absent (Set
// false), null (Set true, Value nil) or a time.
type nullableTime struct {
	Set   bool
	Value *time.Time
}

func (n *nullableTime) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return silo.Errorf(silo.EINVALIDJSON, "due_at must be an RFC 3339 time or null.")
	}
	t, err := silo.ParseTime(s)
	// The range is checked in UTC, the zone the API answers in: an offset
	// could otherwise take an accepted time to a year 10000 the API writes
	// but then refuses to read back, or before 1970.
	t = t.UTC()
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return silo.Errorf(silo.EINVALIDJSON, "due_at must be an RFC 3339 time between 1970 and 9999 (UTC), or null.")
	}
	n.Value = &t
	return nil
}
