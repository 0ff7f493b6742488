package denylist_test

import (
	"bytes"
	"testing"

	"payflow/deploy"
	"payflow/risk/denylist"
)

// TestTheShippedSampleParses: the sample the dev stack starts from is a
// valid list, of examples only.
func TestTheShippedSampleParses(t *testing.T) {
	l, err := denylist.Parse(bytesReader(deploy.DenyListSample), "deploy/risk/deny-list.sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() == 0 {
		t.Fatal("the sample lists nothing")
	}
	for _, e := range l.Entries() {
		if e.Source[:7] != "EXAMPLE" {
			t.Errorf("line %d: %s is not marked as an example (%s)", e.Line, e.Address, e.Source)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
