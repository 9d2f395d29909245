package silo_test

import (
	"testing"

	"github.com/silohq/silo/internal/silo"
)

// TestCleanTextVisible: a name needs a character a reader can see, and no
// bidirectional override or isolate; right-to-left marks, emoji sequences
// and scripts of every kind are names.
func TestCleanTextVisible(t *testing.T) {
	for s, ok := range map[string]bool{
		"Apollo":         true,
		"Émile 東京":       true,
		"👩\u200d💻":       true, // joined by ZWJ
		"שלום 123\u200f": true, // RLM
		"x\u061c":        true, // ALM
		"\u200b\ufeff":   false,
		"\ufe0f":         false, // variation selector
		"\U000E0100":     false, // variation selector supplement
		"\u034f":         false, // combining grapheme joiner
		"\u17b4\u17b5":   false,
		"\u3164\u115f":   false, // Hangul fillers
		"\u2800":         false, // braille blank
		"\u2065":         false,
		"  \u00ad ":      false,
		"abc\u202edcb":   false,
		"a\u2066b\u2069": false,
		"tab\tinside":    false,
		"a\ufffe":        false, // noncharacters
		"a\ufdd0b":       false,
		"a\U0010ffff":    false,
	} {
		if _, err := silo.CleanText(s, "name", silo.EINVALIDNAME); (err == nil) != ok {
			t.Errorf("CleanText(%+q): %v, want ok=%v", s, err, ok)
		}
	}
}
