-- Generated from schemas/clickhouse/0004_dead_letter_bytes_and_unknown_fields.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

ALTER TABLE dead_letters_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS raw_length UInt64 AFTER received_at,
    ADD COLUMN IF NOT EXISTS raw_sha256 String AFTER raw_length,
    ADD COLUMN IF NOT EXISTS truncated  UInt8 AFTER raw_sha256,
    ADD COLUMN IF NOT EXISTS origin     String AFTER truncated;

ALTER TABLE dead_letters ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS raw_length UInt64 AFTER received_at,
    ADD COLUMN IF NOT EXISTS raw_sha256 String AFTER raw_length,
    ADD COLUMN IF NOT EXISTS truncated  UInt8 AFTER raw_sha256,
    ADD COLUMN IF NOT EXISTS origin     String AFTER truncated;

ALTER TABLE comments_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS unknown_fields Map(String, String) AFTER is_deleted;

ALTER TABLE comments ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS unknown_fields Map(String, String) AFTER is_deleted;
