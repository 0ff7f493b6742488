package hd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Hardened is added to an index to name its hardened child (written i').
const Hardened uint32 = 0x80000000

// ErrPath: a derivation path is not of the form m/a/b'/c...
var ErrPath = errors.New("not a derivation path")

// Path is a BIP32 derivation path from the master key: one child index a
// level, hardened ones at Hardened and above.
type Path []uint32

var (
	// AccountPath is BIP44's first Ethereum account, m/44'/60'/0': the
	// level whose xpub derives deposit addresses.
	AccountPath = Path{44 + Hardened, 60 + Hardened, 0 + Hardened}
)

// DepositPath is the path of deposit address i, m/44'/60'/0'/0/i (the
// account's external chain; the path go-ethereum's accounts package and
// common wallets use for their i-th address). i must be below Hardened.
func DepositPath(i uint32) Path {
	return append(append(Path{}, AccountPath...), 0, i)
}

// ParsePath reads an absolute path: "m", then levels separated by "/",
// each a decimal index below 2^31, hardened when followed by ', h or H.
// Spaces are not allowed.
func ParsePath(s string) (Path, error) {
	parts := strings.Split(s, "/")
	if parts[0] != "m" {
		return nil, fmt.Errorf("%q does not start at m: %w", s, ErrPath)
	}
	p := make(Path, 0, len(parts)-1)
	for _, part := range parts[1:] {
		hardened := false
		if n := len(part); n > 0 && (part[n-1] == '\'' || part[n-1] == 'h' || part[n-1] == 'H') {
			hardened, part = true, part[:n-1]
		}
		if part == "" || part[0] == '+' || part[0] == '-' || (len(part) > 1 && part[0] == '0') {
			return nil, fmt.Errorf("%q: level %q: %w", s, part, ErrPath)
		}
		i, err := strconv.ParseUint(part, 10, 31)
		if err != nil {
			return nil, fmt.Errorf("%q: level %q: %w", s, part, ErrPath)
		}
		if hardened {
			i += uint64(Hardened)
		}
		p = append(p, uint32(i))
	}
	return p, nil
}

// String writes p as ParsePath reads it, hardened levels with '.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString("m")
	for _, i := range p {
		b.WriteByte('/')
		if i >= Hardened {
			b.WriteString(strconv.FormatUint(uint64(i-Hardened), 10))
			b.WriteByte('\'')
		} else {
			b.WriteString(strconv.FormatUint(uint64(i), 10))
		}
	}
	return b.String()
}
