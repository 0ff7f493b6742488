-- payflow-signer's Bitcoin signatures (owned by package custody/signer).
--
-- Every Bitcoin transaction the signer signed, one row per attempt of a
-- workflow step, stored before the answer: the same request again (the
-- same txid: a segwit txid commits to no signature) gets the same raw
-- transaction, another transaction for the same attempt is refused.
-- recipient and amount_sats are what attempt 0 paid (a replacement pays the
-- same), fee_sats what each attempt leaves to the miners (a replacement's
-- is higher than the attempt it replaces). res0 is the reservation of a
-- first attempt, and its unique key makes one reservation pay for one step.
CREATE TABLE IF NOT EXISTS signer_btc_steps (
  chain           VARCHAR(16)     NOT NULL,
  workflow_id     VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step            VARCHAR(64)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  attempt         INT UNSIGNED    NOT NULL,
  reservation_key VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  from_address    VARCHAR(90)     NOT NULL,
  recipient       VARCHAR(90)     NOT NULL,
  amount_sats     BIGINT UNSIGNED NOT NULL,
  fee_sats        BIGINT UNSIGNED NOT NULL,
  txid            CHAR(64)        NOT NULL,
  raw             MEDIUMBLOB      NOT NULL,
  created_at      TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  res0            VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin AS (IF(attempt = 0, reservation_key, NULL)) STORED,
  PRIMARY KEY (chain, workflow_id, step, attempt),
  UNIQUE KEY uq_signer_btc_steps_reservation (chain, res0),
  KEY ix_signer_btc_steps_txid (txid)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;

-- The outputs a step's transactions spend, written with its attempt 0 and
-- never changed: every attempt of the step spends exactly these (so one
-- attempt at most is mined), and the primary key lets no other step spend
-- any of them (a signed transaction stays valid, and may be sent by
-- anyone, as long as its inputs are unspent). sats is the amount the
-- request said the output holds (its witness UTXO, which the signature
-- commits to); a replacement must say the same.
CREATE TABLE IF NOT EXISTS signer_btc_inputs (
  chain       VARCHAR(16)     NOT NULL,
  txid        CHAR(64)        NOT NULL,
  vout        INT UNSIGNED    NOT NULL,
  sats        BIGINT UNSIGNED NOT NULL,
  workflow_id VARCHAR(255)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  step        VARCHAR(64)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (chain, txid, vout),
  KEY ix_signer_btc_inputs_step (chain, workflow_id, step)
) ENGINE=InnoDB DEFAULT CHARSET=ascii;
