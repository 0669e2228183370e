-- title: Most replied-to authors
-- description: Authors whose comments drew the most direct replies, with how many different
--   people replied, in how many threads, and how hostile the replies were.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest reply posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest reply posted_at included
-- param: include_self_replies | Bool | false | count an author's replies to their own comments
-- param: min_replies | UInt32 | 1 | leave out authors with fewer replies
-- param: limit | UInt32 | 20 | rows returned
SELECT
    p.author AS replied_author,
    count() AS replies,
    uniqExact(r.author) AS distinct_repliers,
    uniqExact(r.thread_id) AS threads,
    countIf(notEmpty(r.flags)) AS flagged_replies,
    round(avg(r.toxicity), 4) AS mean_reply_toxicity
FROM comments AS r FINAL
INNER JOIN
(
    SELECT thread_id, comment_id, author FROM comments FINAL
) AS p ON p.thread_id = r.thread_id AND p.comment_id = r.parent_id
WHERE r.posted_at >= {since:DateTime64(3, 'UTC')} AND r.posted_at <= {until:DateTime64(3, 'UTC')}
  AND ({include_self_replies:Bool} OR r.author != p.author)
GROUP BY replied_author
HAVING replies >= {min_replies:UInt32}
ORDER BY replies DESC, distinct_repliers DESC, replied_author
LIMIT {limit:UInt32}
