-- title: Dead-letter summary
-- description: Input no stage could accept, grouped by stage and reason code: how many, when first
--   and last seen, from which topics, and one example reason.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest received_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest received_at included
SELECT
    stage,
    reason_code,
    count() AS dead_letters,
    min(received_at) AS first_seen,
    max(received_at) AS last_seen,
    arrayStringConcat(arraySort(groupUniqArray(source_topic)), ', ') AS topics,
    any(reason) AS example_reason
FROM dead_letters FINAL
WHERE received_at >= {since:DateTime64(3, 'UTC')} AND received_at <= {until:DateTime64(3, 'UTC')}
GROUP BY stage, reason_code
ORDER BY dead_letters DESC, stage, reason_code
