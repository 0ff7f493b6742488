-- payflow ledger: wallets, balances, reservations and the append-only journal.
-- Amounts are DECIMAL(65,18): wide enough for 18-decimal tokens.

CREATE TABLE IF NOT EXISTS wallets (
  id          BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  chain       VARCHAR(16)  NOT NULL,
  address     CHAR(42)     NOT NULL,           -- lowercase 0x address
  kind        ENUM('deposit','collection','hot','gas') NOT NULL,
  label       VARCHAR(64)  NOT NULL DEFAULT '',
  enc_key     VARBINARY(128) NULL,             -- AES-256-GCM(nonce||ciphertext) of the private key
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_wallet (chain, address)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

CREATE TABLE IF NOT EXISTS balances (
  chain       VARCHAR(16)    NOT NULL,
  address     CHAR(42)       NOT NULL,
  symbol      VARCHAR(16)    NOT NULL,
  available   DECIMAL(65,18) NOT NULL DEFAULT 0,
  held        DECIMAL(65,18) NOT NULL DEFAULT 0,
  updated_at  TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, address, symbol),
  CONSTRAINT ck_available CHECK (available >= 0),
  CONSTRAINT ck_held CHECK (held >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Every movement. op: credit (confirmed deposit), reserve (available->held),
-- settle (held->out, the debit), release (held->available), reverse (undo a credit).
-- idem_key is the idempotency key in a unique index:
--   credit/reverse: credit:<chain>:<tx_hash>:<log_index> / reverse:...
--   reserve/settle/release: <op>:<queue_id>
CREATE TABLE IF NOT EXISTS journal (
  id               BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  idem_key         VARCHAR(200)   NOT NULL,
  chain            VARCHAR(16)    NOT NULL,
  address          CHAR(42)       NOT NULL,
  symbol           VARCHAR(16)    NOT NULL,
  op               ENUM('credit','reserve','settle','release','reverse') NOT NULL,
  amount           DECIMAL(65,18) NOT NULL,      -- signed change of the total (available+held)
  available_before DECIMAL(65,18) NOT NULL,
  available_after  DECIMAL(65,18) NOT NULL,
  held_before      DECIMAL(65,18) NOT NULL,
  held_after       DECIMAL(65,18) NOT NULL,
  reference        VARCHAR(200)   NOT NULL DEFAULT '',   -- queue_id / workflow id
  tx_hash          CHAR(66)       NULL,
  log_index        INT UNSIGNED   NULL,
  status           VARCHAR(16)    NOT NULL DEFAULT 'posted',
  created_at       TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uq_journal_idem (idem_key),
  KEY ix_journal_wallet_time (chain, address, symbol, created_at, id),
  KEY ix_journal_tx (tx_hash)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- One reservation per queue_id: the request is debited at most once.
CREATE TABLE IF NOT EXISTS reservations (
  queue_id    VARCHAR(128)   NOT NULL PRIMARY KEY,
  chain       VARCHAR(16)    NOT NULL,
  address     CHAR(42)       NOT NULL,
  symbol      VARCHAR(16)    NOT NULL,
  amount      DECIMAL(65,18) NOT NULL,
  state       ENUM('held','settled','released') NOT NULL,
  workflow_id VARCHAR(255)   NOT NULL,
  tx_hash     CHAR(66)       NULL,
  created_at  TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at  TIMESTAMP(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
