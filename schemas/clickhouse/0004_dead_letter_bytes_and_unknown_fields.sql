-- Dead letters keep the original bytes (or, beyond the message size, their first 64 KiB) with the
-- whole input's length and sha256, and the feeder's origin ("path:line") when it gave one.
-- Comments keep the keys their event had that the schema does not define (misspelt keys stay visible).
ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS raw_length UInt64 AFTER received_at,
    ADD COLUMN IF NOT EXISTS raw_sha256 String AFTER raw_length,
    ADD COLUMN IF NOT EXISTS truncated  UInt8 AFTER raw_sha256,
    ADD COLUMN IF NOT EXISTS origin     String AFTER truncated;

ALTER TABLE comments
    ADD COLUMN IF NOT EXISTS unknown_fields Map(String, String) AFTER is_deleted;
