-- Import control. Events left out by the filters (`filtered`) or refused by a guard
-- (`refused`) are decided again when the settings that left them out change: the ledger
-- keeps a fingerprint of those settings. The manifest keeps the facts its entries carry
-- (tags, creator organisation, threat level...), so that a "not modified" manifest is
-- filtered as the listed one was.
ALTER TABLE checkpoint ADD COLUMN decision_fingerprint TEXT;
ALTER TABLE manifest_entries ADD COLUMN facts TEXT;
