-- A Bitcoin payment's unsigned attempts (owned by package chain/btc): the
-- transaction built for (chain, workflow_id, step, attempt), stored before
-- payflow-signer is asked, so a retry asks for the same transaction (the
-- same inputs, outputs and fee) and the signer's answer is the same
-- signatures. coin_key holds the inputs in btc_utxos (reserved_by): every
-- attempt of a step spends exactly them. psbt is the unsigned BIP174 packet.
CREATE TABLE IF NOT EXISTS btc_plans (
  chain        VARCHAR(16)     NOT NULL,
  workflow_id  VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step         VARCHAR(64)     NOT NULL,
  attempt      INT UNSIGNED    NOT NULL,
  reservation  VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  coin_key     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  from_address VARCHAR(90)     NOT NULL,
  to_address   VARCHAR(90)     NOT NULL,
  sats         BIGINT          NOT NULL,
  fee_rate     BIGINT          NOT NULL,
  fee          BIGINT          NOT NULL,
  vsize        INT UNSIGNED    NOT NULL,
  txid         CHAR(64)        NOT NULL,
  psbt         MEDIUMBLOB      NOT NULL,
  created_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, workflow_id, step, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
