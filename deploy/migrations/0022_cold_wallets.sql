-- The cold wallet of a chain (kind cold): where the hot tier's excess above
-- an asset's hot_ceiling is swept. payflow never holds its key: it is
-- watch-only (key_holder 'none'), booked and reconciled like every managed
-- wallet.
ALTER TABLE wallets MODIFY COLUMN kind ENUM('deposit','collection','hot','gas','cold') NOT NULL;
