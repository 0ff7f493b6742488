-- payflow-signer's own tables: the keys it reaches, its HD state, the steps
-- it signed and its append-only audit log. Only package custody/signer
-- reads and writes them.
--
-- A key the signer reaches: a KMS key (kms_key_id; the private key never
-- leaves the KMS) or a key sealed under a KMS data key (sealed: the
-- custody/kms Sealed encoding of the 32-byte private key, its associated
-- data the address). HD children have no row: a ledger wallet's hd_index
-- names them.
CREATE TABLE IF NOT EXISTS signer_keys (
  address    CHAR(42)                 NOT NULL,
  backend    ENUM('kms','envelope')   NOT NULL,
  kms_key_id VARCHAR(2048)            NULL,
  sealed     VARBINARY(4096)          NULL,
  created_at TIMESTAMP(6)             NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (address),
  KEY ix_signer_keys_backend (backend)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- One row (id 1), written at the signer's first start: the KMS key whose
-- data keys seal key material, the envelope-sealed BIP39 mnemonic and the
-- account xpub (m/44'/60'/0', public) deposit addresses derive from.
CREATE TABLE IF NOT EXISTS signer_state (
  id              TINYINT UNSIGNED NOT NULL,
  envelope_key_id VARCHAR(2048)    NOT NULL,
  sealed_mnemonic VARBINARY(4096)  NOT NULL,
  account_xpub    VARCHAR(128)     NOT NULL,
  created_at      TIMESTAMP(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Every transaction the signer signed, one row per attempt of a workflow
-- step, stored before the answer: the same request again gets the same raw
-- transaction, another transaction for the same attempt is refused.
-- res0 is the reservation of a first attempt (replacements have none), and
-- its unique key makes one reservation pay for one step only. Amounts are
-- wei in decimal (a uint256 may have 78 digits).
CREATE TABLE IF NOT EXISTS signer_steps (
  chain           VARCHAR(16)     NOT NULL,
  workflow_id     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step            VARCHAR(64)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  attempt         INT UNSIGNED    NOT NULL,
  reservation_key VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  chain_id        BIGINT UNSIGNED NOT NULL,
  from_address    CHAR(42)        NOT NULL,
  nonce           BIGINT UNSIGNED NOT NULL,
  to_address      CHAR(42)        NOT NULL,
  value_wei       VARCHAR(78)     NOT NULL,
  data            MEDIUMBLOB      NOT NULL,
  gas             BIGINT UNSIGNED NOT NULL,
  tip_cap_wei     VARCHAR(78)     NOT NULL,
  fee_cap_wei     VARCHAR(78)     NOT NULL,
  tx_hash         CHAR(66)        NOT NULL,
  raw             MEDIUMBLOB      NOT NULL,
  created_at      TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  res0            VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin AS (IF(attempt = 0, reservation_key, NULL)) STORED,
  PRIMARY KEY (chain, workflow_id, step, attempt),
  UNIQUE KEY uq_signer_steps_reservation (chain, res0),
  KEY ix_signer_steps_hash (tx_hash)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- Every request the signer answered and its verdict, appended, never
-- changed: the triggers below refuse UPDATE and DELETE in the database too.
CREATE TABLE IF NOT EXISTS signer_audit (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  at              TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  chain           VARCHAR(16)     NOT NULL,
  workflow_id     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step            VARCHAR(64)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  attempt         INT             NOT NULL,
  from_address    VARCHAR(64)     NOT NULL,
  reservation_key VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  tx_hash         CHAR(66)        NOT NULL DEFAULT '',
  verdict         ENUM('signed','replayed','refused') NOT NULL,
  reason          VARCHAR(1024)   CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
  PRIMARY KEY (id),
  KEY ix_signer_audit_step (chain, workflow_id, step)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

CREATE TRIGGER IF NOT EXISTS signer_audit_no_update BEFORE UPDATE ON signer_audit FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'signer_audit is append-only: its rows are never changed';
CREATE TRIGGER IF NOT EXISTS signer_audit_no_delete BEFORE DELETE ON signer_audit FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'signer_audit is append-only: its rows are never deleted';
