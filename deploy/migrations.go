// Package deploy holds what payflow deploys besides its binaries: the numbered
// SQL migrations (embedded here so the binaries and tests apply the same files)
// and the docker-compose support files.
package deploy

import "embed"

// Migrations are the numbered SQL files, applied in name order by ledger.Migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS
