-- title: Reply latency distribution
-- description: How long after its parent a reply was posted, in buckets from under a minute to
--   over a day, with each bucket's share, the running share and the median latency inside it.
--   Every bucket is listed (an empty one has 0 replies and a NULL median). A reply "before" its
--   parent (clock skew) counts as < 1 min.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest reply posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest reply posted_at included
-- param: thread_id | String | '' | one thread only ('' = all threads)
WITH replies AS
(
    SELECT dateDiff('second', p.posted_at, r.posted_at) AS latency_s
    FROM comments AS r FINAL
    INNER JOIN
    (
        SELECT thread_id, comment_id, posted_at FROM comments FINAL
    ) AS p ON p.thread_id = r.thread_id AND p.comment_id = r.parent_id
    WHERE r.posted_at >= {since:DateTime64(3, 'UTC')} AND r.posted_at <= {until:DateTime64(3, 'UTC')}
      AND ({thread_id:String} = '' OR r.thread_id = {thread_id:String})
),
counted AS
(
    SELECT
        multiIf(latency_s < 60, 1, latency_s < 300, 2, latency_s < 900, 3, latency_s < 3600, 4,
                latency_s < 21600, 5, latency_s < 86400, 6, 7) AS bucket_order,
        count() AS replies,
        quantileExact(0.5)(latency_s) AS median_latency_s
    FROM replies
    GROUP BY bucket_order
)
SELECT
    b.bucket AS bucket,
    c.replies AS replies,
    round(if(sum(c.replies) OVER () = 0, 0, c.replies / sum(c.replies) OVER ()), 4) AS share,
    round(if(sum(c.replies) OVER () = 0, 0,
             sum(c.replies) OVER (ORDER BY b.bucket_order) / sum(c.replies) OVER ()), 4) AS cumulative_share,
    if(c.replies = 0, NULL, c.median_latency_s) AS median_latency_s
FROM
(
    SELECT tupleElement(pair, 1) AS bucket_order, tupleElement(pair, 2) AS bucket
    FROM system.one
    ARRAY JOIN [(1, '< 1 min'), (2, '1-5 min'), (3, '5-15 min'), (4, '15-60 min'),
                (5, '1-6 h'), (6, '6-24 h'), (7, '>= 1 day')] AS pair
) AS b
LEFT JOIN counted AS c ON c.bucket_order = b.bucket_order
ORDER BY b.bucket_order
