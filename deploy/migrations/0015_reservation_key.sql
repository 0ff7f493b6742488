-- A reservation's key was stored as queue_id, but it is no queue_id: it is
-- the key a reservation is held under, a payment's workflow id, a sweep's key
-- or a transfer's gas budget ("gas:<workflow id>/<step>"). The column says
-- what it holds. workflow_id stays: for gas and sweeps it differs from the key.
ALTER TABLE reservations RENAME COLUMN queue_id TO reservation_key;
