package silo

import "github.com/google/uuid"

// NewID returns a new row id: a UUIDv7 in its canonical form, which is what
// DecodeCursor accepts. It is opaque (unlike a sequence, it tells nothing
// about how many rows a tenant, or any other tenant, has) and starts with
// the time, so rows listed by id come out in creation order and new rows
// land at the end of the index.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// IsID reports whether s is an id as NewID makes them (a UUID in its
// canonical, lower-case form).
func IsID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}
