package chunk

import (
	"slices"
	"strings"
)

// SortNatural sorts names so that runs of digits compare as numbers:
// "2.txt" < "10.txt", "ch9" < "ch10". Ties (such as "01" and "1") fall back
// to plain byte order, so the order is total and deterministic.
func SortNatural(names []string) {
	slices.SortStableFunc(names, func(a, b string) int {
		if c := compareNatural(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			na, ra := digits(a)
			nb, rb := digits(b)
			if c := compareNumbers(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
		case da != db:
			// A number sorts before text, as in Python's natural_keys
			// comparisons of "" < "x" at the split boundary.
			if da {
				return -1
			}
			return 1
		default:
			ta, ra := text(a)
			tb, rb := text(b)
			if c := strings.Compare(ta, tb); c != 0 {
				return c
			}
			a, b = ra, rb
		}
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func text(s string) (string, string) {
	i := 0
	for i < len(s) && !isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// compareNumbers compares digit strings by value, of any length.
func compareNumbers(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
