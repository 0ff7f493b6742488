package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args    []string
		pos     []string
		flow    string
		asJSON  bool
		wantErr bool
	}{
		{args: []string{"q1"}, pos: []string{"q1"}},
		{args: []string{"q1", "--flow", "pay", "--json"}, pos: []string{"q1"}, flow: "pay", asJSON: true},
		{args: []string{"--json", "q1", "-flow=withdraw"}, pos: []string{"q1"}, flow: "withdraw", asJSON: true},
		{args: []string{"--json", "--", "-q1"}, pos: []string{"-q1"}, asJSON: true},
		{args: []string{"q1", "--", "--flow"}, pos: []string{"q1", "--flow"}},
		{args: []string{"q1", "--nope"}, wantErr: true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(nopWriter{})
		flow := fs.String("flow", "", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, c.args)
		if (err != nil) != c.wantErr {
			t.Errorf("%v: err %v", c.args, err)
			continue
		}
		if c.wantErr {
			continue
		}
		if !slices.Equal(pos, c.pos) || *flow != c.flow || *asJSON != c.asJSON {
			t.Errorf("%v: positional %q flow %q json %v; want %q %q %v", c.args, pos, *flow, *asJSON, c.pos, c.flow, c.asJSON)
		}
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestApplyEnvFile: quoted and bare values are set; a variable already in
// the environment wins over the file.
func TestApplyEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "payflow.env")
	body := "# dev secrets\nPAYFLOWCTL_T_A='a=b c'\nexport PAYFLOWCTL_T_B=\"two\"\nPAYFLOWCTL_T_C=bare\nPAYFLOWCTL_T_SET='file'\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PAYFLOWCTL_T_SET", "env")
	for _, k := range []string{"PAYFLOWCTL_T_A", "PAYFLOWCTL_T_B", "PAYFLOWCTL_T_C"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	if err := applyEnvFile(p); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"PAYFLOWCTL_T_A": "a=b c", "PAYFLOWCTL_T_B": "two", "PAYFLOWCTL_T_C": "bare",
		"PAYFLOWCTL_T_SET": "env"} {
		if got := os.Getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
