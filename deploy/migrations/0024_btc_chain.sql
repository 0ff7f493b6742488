-- A Bitcoin chain's own tables, owned by package chain/btc.

-- The deposit scanner's recent blocks, per chain: the last is its cursor;
-- the hashes find reorganisations. A window of blocks, older ones deleted.
CREATE TABLE IF NOT EXISTS btc_blocks (
  chain   VARCHAR(16)     NOT NULL,
  height  BIGINT UNSIGNED NOT NULL,
  hash    CHAR(64)        NOT NULL,
  PRIMARY KEY (chain, height)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- The UTXO set of the managed wallets: every output paying one, from the
-- moment payflow knows it (unconfirmed: in the pool, or its block not yet
-- confirmations deep; spendable: confirmed; reserved: held for a payment,
-- reserved_by its reservation key; spent: consumed by spent_txid). A
-- wallet's confirmed balance is the sum of its spendable and reserved
-- outputs. One row per output: (chain, txid, vout) is the key. A
-- reservation key carries a business's queue_id: any Unicode text, compared
-- exactly (utf8mb4, binary collation, as the ledger's keys are).
CREATE TABLE IF NOT EXISTS btc_utxos (
  chain        VARCHAR(16)     NOT NULL,
  txid         CHAR(64)        NOT NULL,
  vout         INT UNSIGNED    NOT NULL,
  address      VARCHAR(90)     NOT NULL,
  sats         BIGINT          NOT NULL,
  state        ENUM('unconfirmed','spendable','reserved','spent') NOT NULL,
  block_height BIGINT UNSIGNED NULL,
  block_hash   CHAR(64)        NULL,
  reserved_by  VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  spent_txid   CHAR(64)        NULL,
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, txid, vout),
  KEY ix_btc_utxos_wallet (chain, address, state),
  KEY ix_btc_utxos_reserved (chain, reserved_by),
  KEY ix_btc_utxos_block (chain, block_hash),
  CONSTRAINT ck_btc_utxos_sats CHECK (sats > 0)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
