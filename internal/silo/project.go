package silo

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Project is a tenant's project.
type Project struct {
	ID        string
	Name      string
	Archived  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ProjectUpdate holds the fields a PATCH may change; nil means unchanged.
type ProjectUpdate struct {
	Name     *string
	Archived *bool
}

// Empty reports whether u changes nothing (PATCH {}).
func (u ProjectUpdate) Empty() bool { return u.Name == nil && u.Archived == nil }

// ProjectFilter narrows a list of projects; nil fields do not filter.
type ProjectFilter struct {
	Archived *bool
}

// Task belongs to one project of one tenant.
type Task struct {
	ID        string
	ProjectID string
	Title     string
	Done      bool
	DueAt     *time.Time // nil: no due time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewTask is what creating a task takes.
type NewTask struct {
	Title string
	Done  bool
	DueAt *time.Time
}

// TaskUpdate holds the fields a PATCH may change; nil means unchanged.
// SetDueAt with a nil DueAt clears the due time.
type TaskUpdate struct {
	Title    *string
	Done     *bool
	SetDueAt bool
	DueAt    *time.Time
}

// Empty reports whether u changes nothing (PATCH {}).
func (u TaskUpdate) Empty() bool { return u.Title == nil && u.Done == nil && !u.SetDueAt }

// Page asks for one page of a list: at most Limit items after Cursor.
type Page struct {
	Limit  int
	Cursor string // opaque; "" is the first page
}

// Limits of a page.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// MaxTextLen is the longest name or title, in characters.
const MaxTextLen = 200

// CleanText trims s and checks that it is 1 to MaxTextLen characters of
// valid UTF-8 without control characters. code is the error code to use.
func CleanText(s, field, code string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", Errorf(code, "The %s must not be empty.", field)
	}
	if !utf8.ValidString(s) {
		return "", Errorf(code, "The %s must be valid UTF-8.", field)
	}
	if utf8.RuneCountInString(s) > MaxTextLen {
		return "", Errorf(code, "The %s must be at most %d characters.", field, MaxTextLen)
	}
	visible := false
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return "", Errorf(code, "The %s must not contain control characters.", field)
		case bidiOverride(r):
			// They reorder what a reader sees around them (the "Trojan
			// Source" trick): a name would read as another. The marks
			// (LRM, RLM, ALM) stay allowed: right-to-left text needs them,
			// and they move no more than the neutral characters beside them.
			return "", Errorf(code, "The %s must not contain bidirectional override or isolate characters.", field)
		case unicode.Is(unicode.Noncharacter_Code_Point, r):
			// U+FFFE, U+FFFF, U+FDD0..U+FDEF and the last two of each
			// plane: reserved for a program's own use, never text to
			// exchange (U+FFFE is a byte-swapped byte order mark).
			return "", Errorf(code, "The %s must not contain Unicode noncharacters.", field)
		case !invisible(r):
			visible = true
		}
	}
	if !visible {
		return "", Errorf(code, "The %s must contain a visible character.", field)
	}
	return s, nil
}

func bidiOverride(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// invisible: spaces and Unicode's default-ignorable code points (format
// characters such as the zero-width space, soft hyphen and byte order
// mark; variation selectors; the Hangul fillers, the combining grapheme
// joiner and the other characters Unicode says render as nothing), and
// the braille blank.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || r == 0x2800 ||
		unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}
