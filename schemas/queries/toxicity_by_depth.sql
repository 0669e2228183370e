-- title: Toxicity by reply depth
-- description: Mean and 90th-percentile toxicity, and the share of flagged comments, at each
--   reply depth (0 = top-level comment). Depths at or beyond max_depth are counted together.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest posted_at included
-- param: max_depth | UInt16 | 10 | depths at or beyond this are grouped into one row
SELECT
    least(depth, {max_depth:UInt16}) AS depth_level,
    count() AS comments,
    round(avg(toxicity), 4) AS mean_toxicity,
    round(toFloat64(quantileExact(0.9)(toxicity)), 4) AS p90_toxicity,
    countIf(notEmpty(flags)) AS flagged,
    round(flagged / comments, 4) AS flagged_share
FROM comments FINAL
WHERE posted_at >= {since:DateTime64(3, 'UTC')} AND posted_at <= {until:DateTime64(3, 'UTC')}
GROUP BY depth_level
ORDER BY depth_level
