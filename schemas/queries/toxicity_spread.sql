-- title: Toxicity spread from parents to replies
-- description: Threads where toxicity spread: of the direct replies to toxic comments (toxicity at
--   or above the threshold), the share that were toxic themselves (spread_rate), against the same
--   share among replies to civil comments in that thread (baseline_rate); lift = spread / baseline
--   (NULL when the baseline is 0).
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest reply posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest reply posted_at included
-- param: threshold | Float32 | 0.7 | toxicity score from which a comment counts as toxic
-- param: min_toxic_replies | UInt32 | 1 | leave out threads with fewer toxic replies to toxic comments
-- param: limit | UInt32 | 20 | rows returned
WITH pairs AS
(
    SELECT
        r.thread_id AS thread_id,
        r.thread_title AS thread_title,
        p.comment_id AS parent_id,
        p.toxicity >= {threshold:Float32} AS toxic_parent,
        r.toxicity >= {threshold:Float32} AS toxic_reply
    FROM comments AS r FINAL
    INNER JOIN
    (
        SELECT thread_id, comment_id, toxicity FROM comments FINAL
    ) AS p ON p.thread_id = r.thread_id AND p.comment_id = r.parent_id
    WHERE r.posted_at >= {since:DateTime64(3, 'UTC')} AND r.posted_at <= {until:DateTime64(3, 'UTC')}
)
SELECT
    thread_id,
    any(thread_title) AS title,
    uniqExactIf(parent_id, toxic_parent) AS toxic_parents,
    countIf(toxic_parent) AS replies_to_toxic,
    countIf(toxic_parent AND toxic_reply) AS toxic_replies_to_toxic,
    round(toxic_replies_to_toxic / replies_to_toxic, 4) AS spread_rate,
    countIf(NOT toxic_parent) AS replies_to_civil,
    countIf(NOT toxic_parent AND toxic_reply) AS toxic_replies_to_civil,
    round(if(replies_to_civil = 0, 0, toxic_replies_to_civil / replies_to_civil), 4) AS baseline_rate,
    if(toxic_replies_to_civil = 0, NULL,
       round((toxic_replies_to_toxic / replies_to_toxic) / (toxic_replies_to_civil / replies_to_civil), 4)) AS lift
FROM pairs
GROUP BY thread_id
HAVING toxic_replies_to_toxic >= greatest({min_toxic_replies:UInt32}, 1)
ORDER BY toxic_replies_to_toxic DESC, spread_rate DESC, thread_id
LIMIT {limit:UInt32}
