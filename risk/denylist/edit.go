package denylist

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Edits of the file, for payflowctl. Each reads the file, checks that it
// parses, and writes the new version to a temporary file in the same
// directory that is then renamed over it: a reader (a Screen) sees the old
// version or the new one, never half of one.

var (
	// ErrNotListed: Remove found no line of the address.
	ErrNotListed = errors.New("the address is not on the deny list")
	// ErrListed: Add found the address listed already.
	ErrListed = errors.New("the address is on the deny list already")
	// ErrBadAddress: the address does not read as one.
	ErrBadAddress = errors.New("not an address (0x and 40 hex digits, or a Bitcoin address)")
)

// Add appends "address source" to the file at path (created when missing)
// and returns the entry. An address listed already fails with ErrListed
// and its entry.
func Add(path, address, source string) (Entry, error) {
	addr, ok := Normalize(address)
	if !ok {
		return Entry{}, fmt.Errorf("%q: %w", address, ErrBadAddress)
	}
	source = strings.Join(strings.Fields(strings.ReplaceAll(source, "#", "")), " ")
	if source == "" {
		return Entry{}, fmt.Errorf("%s: %w", addr, ErrNoSource)
	}
	body, l, err := read(path)
	if err != nil {
		return Entry{}, err
	}
	if e, listed := l.Lookup(addr); listed {
		return e, fmt.Errorf("%s (line %d, %s): %w", addr, e.Line, e.Source, ErrListed)
	}
	if len(body) > 0 && !bytes.HasSuffix(body, []byte("\n")) {
		body = append(body, '\n')
	}
	body = append(body, []byte(addr+" "+source+"\n")...)
	if err := write(path, body); err != nil {
		return Entry{}, err
	}
	return Entry{Address: addr, Source: source, Line: bytes.Count(body, []byte("\n"))}, nil
}

// Remove deletes every line that lists address (comments and other lines
// stay as they are) and returns the entry that was in force. An address not
// listed fails with ErrNotListed.
func Remove(path, address string) (Entry, error) {
	addr, ok := Normalize(address)
	if !ok {
		return Entry{}, fmt.Errorf("%q: %w", address, ErrBadAddress)
	}
	body, l, err := read(path)
	if err != nil {
		return Entry{}, err
	}
	e, listed := l.Lookup(addr)
	if !listed {
		return Entry{}, fmt.Errorf("%s: %w", addr, ErrNotListed)
	}
	var out bytes.Buffer
	for i, line := range strings.SplitAfter(string(body), "\n") {
		if le, ok, _ := parseLine(strings.TrimRight(line, "\r\n"), i+1); ok && le.Address == addr {
			continue
		}
		out.WriteString(line)
	}
	return e, write(path, out.Bytes())
}

// read returns the file and its parse; a missing file is empty.
func read(path string) ([]byte, *List, error) {
	body, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &List{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading deny list: %w", err)
	}
	l, err := Parse(bytes.NewReader(body), path)
	if err != nil {
		return nil, nil, fmt.Errorf("the file must parse before it is edited: %w", err)
	}
	return body, l, nil
}

// write replaces the file at path with body: a temporary file, synced,
// renamed over it, keeping its mode (0644 for a new file).
func write(path string, body []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing deny list: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(body); err != nil {
		f.Close()
		return fmt.Errorf("writing deny list: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing deny list: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing deny list: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing deny list: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing deny list: %w", err)
	}
	return nil
}
