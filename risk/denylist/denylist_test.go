package denylist

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

const sample = `# example list
0x8589427373D6D84E98730D7795D8F6F8731FDA16 OFAC-SDN 2026-11-30

  0x00000000000000000000000000000000000000aa   TRM  case 42   # inline note
bc1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ OFAC-SDN
1BoatSLRHtKNngkdXEeobR76b53LETtpyT vendor-export
0x8589427373d6d84e98730d7795d8f6f8731fda16 duplicate, the first source is kept
`

func TestParseReadsAddressesAndSources(t *testing.T) {
	l, err := Parse(strings.NewReader(sample), "list.txt")
	require.NoError(t, err)
	require.Equal(t, 4, l.Len())
	for _, tc := range []struct {
		addr, source string
		line         int
		listed       bool
	}{
		{"0x8589427373d6d84e98730d7795d8f6f8731fda16", "OFAC-SDN 2026-11-30", 2, true},
		{"0x8589427373D6D84E98730D7795D8F6F8731FDA16", "OFAC-SDN 2026-11-30", 2, true},
		{"0x00000000000000000000000000000000000000AA", "TRM case 42", 4, true},
		{"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "OFAC-SDN", 5, true},
		{"1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "vendor-export", 6, true},
		{"1boatslrhtknngkdxeeobr76b53lettpyt", "", 0, false}, // base58 is case-sensitive
		{"0x00000000000000000000000000000000000000ab", "", 0, false},
		{"not an address", "", 0, false},
	} {
		e, ok := l.Lookup(tc.addr)
		require.Equal(t, tc.listed, ok, tc.addr)
		if ok {
			require.Equal(t, tc.source, e.Source, tc.addr)
			require.Equal(t, tc.line, e.Line, tc.addr)
		}
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"# ok\n0x123 OFAC\n", `list.txt line 2 ("0x123 OFAC"): "0x123" is not an address`},
		{"0x8589427373d6d84e98730d7795d8f6f8731fda16\n", "list.txt line 1"},
		{"\n\n0x8589427373d6d84e98730d7795d8f6f8731fda16 # no source\n", "line 3"},
	} {
		_, err := Parse(strings.NewReader(tc.body), "list.txt")
		var pe *ParseError
		require.ErrorAs(t, err, &pe, tc.body)
		require.Contains(t, err.Error(), tc.want)
	}
	_, err := Parse(strings.NewReader("0x8589427373d6d84e98730d7795d8f6f8731fda16\n"), "x")
	require.ErrorIs(t, err, ErrNoSource)
}

func TestNilAndEmptyListNothing(t *testing.T) {
	var l *List
	_, ok := l.Lookup("0x8589427373d6d84e98730d7795d8f6f8731fda16")
	require.False(t, ok)
	var s *Screen
	_, ok = s.Check("0x8589427373d6d84e98730d7795d8f6f8731fda16")
	require.False(t, ok)
	s, err := Open("", nil)
	require.NoError(t, err)
	_, ok = s.Check("0x8589427373d6d84e98730d7795d8f6f8731fda16")
	require.False(t, ok)
}

func TestOpenRefusesAListThatDoesNotRead(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.txt"), nil)
	require.Error(t, err)
	bad := filepath.Join(dir, "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("nope x\n"), 0o644))
	_, err = Open(bad, nil)
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
}

const (
	addrA = "0x1111111111111111111111111111111111111111"
	addrB = "0x2222222222222222222222222222222222222222"
)

func TestPollReloadsAChangedFileAndKeepsTheListOnABadOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, []byte(addrA+" first\n"), 0o644))
	s, err := Open(path, nil)
	require.NoError(t, err)
	_, ok := s.Check(addrA)
	require.True(t, ok)
	require.Equal(t, 1.0, value(s.entries))

	// Appended in place (same inode): the size tells.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(addrB + " appended\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s.poll()
	e, ok := s.Check(addrB)
	require.True(t, ok)
	require.Equal(t, "appended", e.Source)
	require.Equal(t, 2.0, value(s.entries))
	require.Equal(t, 2.0, value(s.reloads.WithLabelValues(OutcomeLoaded)))

	// A version that does not parse: the previous list stays, the failure counts once.
	require.NoError(t, os.WriteFile(path, []byte("garbage here\n"), 0o644))
	s.poll()
	s.poll() // unchanged since: not read again
	_, ok = s.Check(addrB)
	require.True(t, ok)
	require.Equal(t, 1.0, value(s.reloads.WithLabelValues(OutcomeFailed)))
	require.Equal(t, 2.0, value(s.entries))

	// Gone: kept as well.
	require.NoError(t, os.Remove(path))
	s.poll()
	_, ok = s.Check(addrA)
	require.True(t, ok)
	require.Equal(t, 2.0, value(s.reloads.WithLabelValues(OutcomeFailed)))

	// Renamed over (a new inode): read.
	_, err = Add(path, addrB, "edited")
	require.NoError(t, err)
	s.poll()
	_, ok = s.Check(addrA)
	require.False(t, ok)
	_, ok = s.Check(addrB)
	require.True(t, ok)
}

func TestRunReloadsWithinAFewPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, nil, 0o644))
	s, err := Open(path, nil)
	require.NoError(t, err)
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	go s.Run(ctx)
	_, err = Add(path, addrA, "OFAC-SDN 2026-12-01")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := s.Check(addrA); return ok }, 10*time.Second, 50*time.Millisecond)
}

func TestAddAndRemoveEditTheFileAndKeepItsComments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deny.txt")
	require.NoError(t, os.WriteFile(path, []byte("# keep me\n"+addrA+" first"), 0o600))
	e, err := Add(path, strings.ToUpper(addrB[2:])+"", "x")
	require.ErrorIs(t, err, ErrBadAddress)
	e, err = Add(path, "0x"+strings.ToUpper(addrB[2:]), "TRM # 7")
	require.NoError(t, err)
	require.Equal(t, Entry{Address: addrB, Source: "TRM 7", Line: 3}, e)
	_, err = Add(path, addrA, "again")
	require.ErrorIs(t, err, ErrListed)
	_, err = Add(path, addrA, "   ")
	require.ErrorIs(t, err, ErrNoSource)

	body, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# keep me\n"+addrA+" first\n"+addrB+" TRM 7\n", string(body))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	e, err = Remove(path, addrA)
	require.NoError(t, err)
	require.Equal(t, "first", e.Source)
	_, err = Remove(path, addrA)
	require.ErrorIs(t, err, ErrNotListed)
	body, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "# keep me\n"+addrB+" TRM 7\n", string(body))

	// A file that does not parse is not edited.
	require.NoError(t, os.WriteFile(path, []byte("bad line\n"), 0o644))
	_, err = Add(path, addrA, "x")
	require.Error(t, err)
	require.True(t, errors.As(err, new(*ParseError)))
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
