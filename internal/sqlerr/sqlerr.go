// Package sqlerr tells MariaDB/MySQL errors apart: the one place payflow
// reads driver error numbers.
package sqlerr

import (
	"errors"

	"github.com/go-sql-driver/mysql"
)

// IsDuplicateKey reports whether err is a unique-key violation (1062): the
// idempotency key of what was being written is there already.
func IsDuplicateKey(err error) bool { return number(err) == 1062 }

// IsDeadlock reports whether err is a deadlock (1213) or a lock wait timeout
// (1205): the transaction was rolled back and may be retried whole.
func IsDeadlock(err error) bool {
	n := number(err)
	return n == 1213 || n == 1205
}

func number(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
