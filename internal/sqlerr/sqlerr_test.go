package sqlerr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestClassifies(t *testing.T) {
	wrap := func(n uint16) error { return fmt.Errorf("inserting: %w", &mysql.MySQLError{Number: n}) }
	for _, c := range []struct {
		err       error
		dup, dead bool
	}{
		{wrap(1062), true, false}, {wrap(1213), false, true}, {wrap(1205), false, true},
		{wrap(1406), false, false}, {errors.New("1062"), false, false}, {nil, false, false},
	} {
		if IsDuplicateKey(c.err) != c.dup || IsDeadlock(c.err) != c.dead {
			t.Errorf("%v: duplicate %v deadlock %v", c.err, IsDuplicateKey(c.err), IsDeadlock(c.err))
		}
	}
}
