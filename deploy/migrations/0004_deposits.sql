-- Deposit watching: watched addresses, the listener's cursor and lease, and
-- every matched deposit (announced or dust).

-- A transaction may carry deposits to several watched addresses (one
-- workflow each), so tracked transactions are keyed by (tx_hash, workflow_id).
ALTER TABLE tracked_txs DROP PRIMARY KEY, ADD PRIMARY KEY (tx_hash, workflow_id);

CREATE TABLE IF NOT EXISTS watched_addresses (
  id          BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  chain       VARCHAR(16)     NOT NULL,
  address     CHAR(42)        NOT NULL,
  symbol      VARCHAR(16)     NOT NULL,
  from_block  BIGINT UNSIGNED NOT NULL,   -- head when the watch began: backfilled from here
  created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_watch (chain, address, symbol)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- The last block the listener fully processed, per chain.
CREATE TABLE IF NOT EXISTS chain_cursor (
  chain        VARCHAR(16)     NOT NULL PRIMARY KEY,
  block_number BIGINT UNSIGNED NOT NULL,
  block_hash   CHAR(66)        NOT NULL,
  updated_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- One holder per named lease (e.g. the listener of a chain).
CREATE TABLE IF NOT EXISTS leases (
  name        VARCHAR(64)  NOT NULL PRIMARY KEY,
  holder      VARCHAR(128) NOT NULL,
  expires_at  TIMESTAMP(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Every Transfer to a watched address. log_index is the log's position within
-- its transaction's receipt: stable when a reorg re-includes the transaction
-- in another block (the block-wide index is not).
CREATE TABLE IF NOT EXISTS deposits (
  chain        VARCHAR(16)     NOT NULL,
  tx_hash      CHAR(66)        NOT NULL,
  log_index    INT UNSIGNED    NOT NULL,
  symbol       VARCHAR(16)     NOT NULL,
  address      CHAR(42)        NOT NULL,
  from_address CHAR(42)        NOT NULL,
  amount       DECIMAL(65,18)  NOT NULL,
  block_number BIGINT UNSIGNED NOT NULL,
  block_hash   CHAR(66)        NOT NULL,
  dust         BOOLEAN         NOT NULL DEFAULT FALSE,
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, tx_hash, log_index),
  KEY ix_deposits_address (chain, address, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
