-- An answer records its flow: the relay (package answers) publishes an
-- answer left unpublished to its flow's response queue, from the
-- configuration, as the workflow's own publish does. The exchange and the
-- routing key were stored and never read; they get a default here, so that
-- payflow no longer writes them, and are dropped by
-- 0014_outbox_columns_drop.sql. Answers recorded before are given their flow
-- by their message id (withdraw-…, pay-…, topup-… and deposit-… workflow
-- ids); one that matches none keeps flow '' and is left to the operator.
ALTER TABLE outbox
  ADD COLUMN IF NOT EXISTS flow VARCHAR(16) CHARACTER SET ascii NOT NULL DEFAULT '' AFTER message_id,
  MODIFY exchange    VARCHAR(128) NOT NULL DEFAULT '',
  MODIFY routing_key VARCHAR(128) NOT NULL DEFAULT '';
UPDATE outbox SET flow = CASE
    WHEN message_id LIKE 'withdraw-%' THEN 'withdraw'
    WHEN message_id LIKE 'pay-%' THEN 'pay'
    WHEN message_id LIKE 'topup-%' OR message_id LIKE 'deposit-%' THEN 'topup'
    ELSE '' END
  WHERE flow = '';
