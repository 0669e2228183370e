-- title: Top threads
-- description: The busiest threads: comments, authors, flagged comments, deepest reply, when the
--   conversation started and stopped, and its average pace in comments per hour.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest posted_at included
-- param: limit | UInt32 | 20 | rows returned
SELECT
    thread_id,
    any(thread_title) AS title,
    count() AS comments,
    uniqExact(author) AS authors,
    countIf(notEmpty(flags)) AS flagged,
    round(flagged / comments, 4) AS flagged_share,
    max(depth) AS max_depth,
    min(posted_at) AS first_comment,
    max(posted_at) AS last_comment,
    round(comments / greatest(dateDiff('second', first_comment, last_comment) / 3600, 1), 2) AS comments_per_hour
FROM comments FINAL
WHERE posted_at >= {since:DateTime64(3, 'UTC')} AND posted_at <= {until:DateTime64(3, 'UTC')}
GROUP BY thread_id
ORDER BY comments DESC, flagged DESC, thread_id
LIMIT {limit:UInt32}
