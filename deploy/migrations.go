// Package deploy holds what payflow deploys besides its binaries: the numbered
// SQL migrations (embedded here so the binaries and tests apply the same files)
// and the docker-compose support files.
package deploy

import "embed"

// Migrations are the numbered SQL files, applied in name order by ledger.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// DenyListSample is the deny list the dev stack starts from (`payflowctl
// devstack` copies it to .dev/deny-list.txt): a few made-up addresses,
// marked as examples.
//
//go:embed risk/deny-list.sample.txt
var DenyListSample []byte
