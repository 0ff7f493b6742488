package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestListTableFitsTerminal: `payflowctl payment list` must fit a
// 120-column terminal whatever the row holds (a queue_id may have 128
// characters, not bytes), cutting long values with a visible mark, while
// --json keeps every value whole.
func TestListTableFitsTerminal(t *testing.T) {
	longID := strings.Repeat("q", 100) + strings.Repeat("é", 28) // 128 runes, 156 bytes
	start := time.Date(2026, 11, 22, 5, 10, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		row     listRow
		cutMark bool
	}{
		{name: "128-character queue_id", cutMark: true, row: listRow{
			QueueID: longID, Flow: "withdraw", WorkflowID: "withdraw-" + longID, Status: "awaiting-approval",
			Workflow: "ContinuedAsNew", Address: "0x" + strings.Repeat("a", 40), TxHash: "0x" + strings.Repeat("b", 64),
			StartTime: start}},
		{name: "short values", row: listRow{
			QueueID: "withdraw_123", Flow: "pay", WorkflowID: "pay-withdraw_123", Status: "succeeded",
			Workflow: "Completed", StartTime: start}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			listView{c.row}.text(&out)
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("want a header and one row, got %q", out.String())
			}
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); n > 120 {
					t.Errorf("line of %d columns (> 120): %q", n, l)
				}
			}
			row := lines[1]
			if c.cutMark {
				if !strings.HasPrefix(row, longID[:20]) || !strings.Contains(row, "…") {
					t.Errorf("long queue_id not cut with a mark: %q", row)
				}
				if strings.Contains(row, longID) {
					t.Errorf("queue_id shown whole: %q", row)
				}
			} else if strings.Contains(row, "…") || !strings.HasPrefix(row, c.row.QueueID+" ") {
				t.Errorf("short values must be shown whole, unmarked: %q", row)
			}
		})
	}
}

// TestListJSONKeepsWholeValues: the cut is the table's alone.
func TestListJSONKeepsWholeValues(t *testing.T) {
	longID := strings.Repeat("x", 128)
	b, err := json.Marshal(listView{{QueueID: longID, TxHash: "0x" + strings.Repeat("b", 64)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"queue_id":"`+longID+`"`) || strings.Contains(string(b), "…") {
		t.Errorf("json cut a value: %s", b)
	}
}
