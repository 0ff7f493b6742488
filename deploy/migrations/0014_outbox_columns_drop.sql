-- The outbox's exchange and routing key were written and never read: an
-- answer goes to its flow's response queue (0014_outbox_columns.sql).
ALTER TABLE outbox DROP COLUMN IF EXISTS exchange, DROP COLUMN IF EXISTS routing_key;
