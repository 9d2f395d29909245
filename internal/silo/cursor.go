package silo

import "encoding/base64"

// EncodeCursor turns the last id of a page into an opaque cursor.
func EncodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// DecodeCursor is EncodeCursor's inverse; anything it did not make is
// EINVALIDCURSOR. Every row id is a UUID in its canonical form (lowercase,
// hyphenated), so a cursor that decodes to anything else was not made by
// EncodeCursor: it is refused rather than taken as a position to list
// from, in every placement alike (PostgreSQL's text could not even hold
// some of what base64 can carry, such as NUL).
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	// The decoder skips line breaks: only the one encoding of the id is
	// its cursor.
	if err != nil || !canonicalUUID(b) || EncodeCursor(string(b)) != c {
		return "", Errorf(EINVALIDCURSOR, "Invalid cursor.")
	}
	return string(b), nil
}

// canonicalUUID reports whether b is a UUID as ids are written:
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in lowercase hex.
func canonicalUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// PageArgs validates a page: its cursor (DecodeCursor) and its limit
// (default DefaultPageLimit, at most MaxPageLimit). Every engine uses it,
// so a cursor and a limit mean the same whatever the placement.
func PageArgs(p Page) (after string, limit int64, err error) {
	after, err = DecodeCursor(p.Cursor)
	if err != nil {
		return "", 0, err
	}
	n := p.Limit
	if n == 0 {
		n = DefaultPageLimit
	}
	if n < 1 || n > MaxPageLimit {
		return "", 0, Errorf(EINVALIDLIMIT, "The limit must be between 1 and %d.", MaxPageLimit)
	}
	return after, int64(n), nil
}
