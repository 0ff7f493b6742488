-- Wallet history across all symbols, and reconciliation results.

-- History of one wallet without a symbol filter reads newest first along this
-- index, by keyset (created_at, id); ix_journal_wallet_time serves the
-- per-symbol case.
ALTER TABLE journal ADD KEY ix_journal_wallet_all_time (chain, address, created_at, id);

-- One row per (run, wallet, asset): ledger total (available + held) against
-- the chain's balanceOf at a pinned block. difference = chain_balance -
-- ledger_total. unmatched lists transfers seen on chain but not in the journal,
-- or the reverse (NULL when none). The unique key makes recording a run's
-- result idempotent.
CREATE TABLE IF NOT EXISTS reconciliations (
  id            BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  run_id        VARCHAR(128)    NOT NULL,
  chain         VARCHAR(16)     NOT NULL,
  address       CHAR(42)        NOT NULL,
  symbol        VARCHAR(16)     NOT NULL,
  block_number  BIGINT UNSIGNED NOT NULL,
  block_hash    CHAR(66)        NOT NULL,
  ledger_total  DECIMAL(65,18)  NOT NULL,
  chain_balance DECIMAL(65,18)  NOT NULL,
  difference    DECIMAL(65,18)  NOT NULL,
  status        ENUM('matched','mismatch') NOT NULL,
  unmatched     JSON            NULL,
  created_at    TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_recon_run (run_id, chain, address, symbol),
  KEY ix_recon_wallet_time (chain, address, created_at),
  -- Listing a whole chain newest first, and its mismatches alone.
  KEY ix_recon_chain_time (chain, created_at),
  KEY ix_recon_status_time (chain, status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
