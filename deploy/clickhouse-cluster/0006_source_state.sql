-- Generated from schemas/clickhouse/0006_source_state.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

ALTER TABLE comments_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS source_state LowCardinality(String) DEFAULT '';

ALTER TABLE comments ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS source_state LowCardinality(String) DEFAULT '';

ALTER TABLE comments_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS source_kind LowCardinality(String) DEFAULT '';

ALTER TABLE comments ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS source_kind LowCardinality(String) DEFAULT '';
