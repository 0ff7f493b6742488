package sqlrows_test

import (
	"context"
	"errors"
	"testing"

	"payflow/internal/sqlrows"
	"payflow/internal/stacktest"
)

func TestCollectReadsEveryRowInOrder(t *testing.T) {
	db := stacktest.TestDB(t, "sqlrows")
	got, err := sqlrows.Collect(context.Background(), db, sqlrows.String,
		"SELECT ? UNION ALL SELECT ? UNION ALL SELECT ?", "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("got %q, want [a b c]", got)
	}
	none, err := sqlrows.Collect(context.Background(), db, sqlrows.String, "SELECT 'x' FROM DUAL WHERE 1=0")
	if err != nil || none != nil {
		t.Fatalf("no rows: got %q, %v; want nil, nil", none, err)
	}
}

func TestCollectReturnsTheFirstErrorAsItIs(t *testing.T) {
	db := stacktest.TestDB(t, "sqlrows")
	boom := errors.New("boom")
	calls := 0
	got, err := sqlrows.Collect(context.Background(), db, func(r sqlrows.Scanner) (string, error) {
		calls++
		return "", boom
	}, "SELECT 1 UNION ALL SELECT 2")
	if !errors.Is(err, boom) || got != nil || calls != 1 {
		t.Fatalf("got %q, %v after %d scans; want nil, boom after 1", got, err, calls)
	}
	if _, err := sqlrows.Collect(context.Background(), db, sqlrows.String, "SELECT FROM"); err == nil {
		t.Fatal("a bad query: want its error")
	}
}

func TestEachCallsRowForEveryRow(t *testing.T) {
	db := stacktest.TestDB(t, "sqlrows")
	sum := 0
	err := sqlrows.Each(context.Background(), db, func(r sqlrows.Scanner) error {
		var n int
		if err := r.Scan(&n); err != nil {
			return err
		}
		sum += n
		return nil
	}, "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 4")
	if err != nil || sum != 7 {
		t.Fatalf("got %d, %v; want 7, nil", sum, err)
	}
}
