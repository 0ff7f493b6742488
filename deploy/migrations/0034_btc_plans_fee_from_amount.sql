-- A Bitcoin step whose fee is paid out of its amount (a sweep: every coin
-- it spends goes to one output, less the fee, no change): its replacements
-- pay the recipient less, not the wallet more. fee_from_amount says so for
-- every attempt of the step, so a replacement is rebuilt the same way.
ALTER TABLE btc_plans ADD COLUMN IF NOT EXISTS fee_from_amount BOOLEAN NOT NULL DEFAULT FALSE;
