// Package denylist is payflow's screening list: the addresses no payment may
// pay and whose deposits are frozen, read from a text file an operator's job
// keeps (exported from the OFAC SDN list's digital currency addresses, or a
// sanctions screening vendor's API). payflow never fetches a list itself: it
// reads the file, and reads it again when it changes (Watcher).
//
// The file holds one address a line, then its source (free text: the list it
// comes from, a date, a case number):
//
//	# comments and blank lines are skipped
//	0x8589427373d6d84e98730d7795d8f6f8731fda16 OFAC-SDN 2026-11-30
//
// EVM addresses (0x and 40 hex digits) and bech32 Bitcoin addresses match in
// any case; base58 Bitcoin addresses are case-sensitive, as they are on the
// chain. A line that does not read fails the whole file with a ParseError
// naming the line: a list half read would let the rest through.
package denylist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Entry is one listed address.
type Entry struct {
	// Address as matched: lower-cased, except a base58 Bitcoin address.
	Address string
	// Source is the rest of the line: where the listing comes from.
	Source string
	// Line is its line number in the file (1-based).
	Line int
}

// List is a parsed deny list. The zero value and nil list nothing.
type List struct {
	entries map[string]Entry
}

// ErrNoSource: a line names an address but not where its listing comes from.
var ErrNoSource = errors.New("no source after the address")

// ParseError is a line of a deny list that does not read.
type ParseError struct {
	Path string // "" when parsed from a reader with no name
	Line int
	Text string // the line, clipped
	Err  error
}

func (e *ParseError) Error() string {
	where := fmt.Sprintf("line %d", e.Line)
	if e.Path != "" {
		where = e.Path + " " + where
	}
	return fmt.Sprintf("deny list %s (%q): %v", where, e.Text, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

var (
	evmAddress    = regexp.MustCompile(`^0[xX][0-9a-fA-F]{40}$`)
	bech32Address = regexp.MustCompile(`^(?i)(bc|tb|bcrt)1[02-9ac-hj-np-z]{6,87}$`)
	base58Address = regexp.MustCompile(`^[13mn2][1-9A-HJ-NP-Za-km-z]{25,34}$`)
)

// Normalize is address as the list matches it, and whether it reads as an
// address at all.
func Normalize(address string) (string, bool) {
	a := strings.TrimSpace(address)
	switch {
	case evmAddress.MatchString(a), bech32Address.MatchString(a):
		return strings.ToLower(a), true
	case base58Address.MatchString(a):
		return a, true
	}
	return "", false
}

// Parse reads a deny list; path only names it in errors.
func Parse(r io.Reader, path string) (*List, error) {
	l := &List{entries: map[string]Entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		e, ok, err := parseLine(sc.Text(), n)
		if err != nil {
			return nil, &ParseError{Path: path, Line: n, Text: clip(strings.TrimSpace(sc.Text()), 80), Err: err}
		}
		if !ok {
			continue
		}
		if _, dup := l.entries[e.Address]; !dup {
			l.entries[e.Address] = e // the first listing's source is kept
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading deny list %s: %w", path, err)
	}
	return l, nil
}

// parseLine reads one line: ok false for a blank line or a comment.
func parseLine(text string, n int) (Entry, bool, error) {
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return Entry{}, false, nil
	}
	addr, ok := Normalize(fields[0])
	if !ok {
		return Entry{}, false, fmt.Errorf("%q is not an address (0x and 40 hex digits, or a Bitcoin address)", clip(fields[0], 64))
	}
	if len(fields) < 2 {
		return Entry{}, false, ErrNoSource
	}
	return Entry{Address: addr, Source: strings.Join(fields[1:], " "), Line: n}, true, nil
}

// Load reads and parses the file at path.
func Load(path string) (*List, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading deny list: %w", err)
	}
	return Parse(bytes.NewReader(b), path)
}

// Lookup says whether address is listed, and its entry.
func (l *List) Lookup(address string) (Entry, bool) {
	if l == nil || len(l.entries) == 0 {
		return Entry{}, false
	}
	a, ok := Normalize(address)
	if !ok {
		return Entry{}, false
	}
	e, ok := l.entries[a]
	return e, ok
}

// Len is how many addresses are listed.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Entries lists the entries in file order.
func (l *List) Entries() []Entry {
	if l == nil {
		return nil
	}
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
