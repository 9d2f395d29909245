package silo

import (
	"errors"
	"strings"
	"time"
)

// ParseTime reads an RFC 3339 time as the API takes them. Go's parser also
// takes a comma before the fraction and offsets of 24 hours or more, which
// RFC 3339 does not: another client or proxy reading the same value would
// refuse it or read another time.
func ParseTime(s string) (time.Time, error) {
	// RFC 3339 allows a lowercase "t" and "z", Go's parser does not; the
	// rest of a valid time is digits and punctuation, which ToUpper keeps.
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, err
	}
	if strings.ContainsRune(s, ',') {
		return time.Time{}, errors.New("a comma before the fraction of a second is not RFC 3339")
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return time.Time{}, errors.New("the offset must be under 24 hours")
	}
	return t, nil
}
