-- title: Reviewed comments (training export)
-- description: Every moderator verdict with the comment's text, one row per comment, category and
--   reviewer (latest verdict): the export `bench/train_flags.py --reviews FILE` reads
--   (`streams query reviewed_comments --format json > reviews.json`). confirm and missed make the
--   comment a positive for the category, reject a negative.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest reviewed_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest reviewed_at included
SELECT
    r.comment_id AS comment_id,
    r.thread_id AS thread_id,
    r.category AS category,
    toString(r.verdict) AS verdict,
    r.reviewer AS reviewer,
    r.model_version AS model_version,
    r.reviewed_at AS reviewed_at,
    c.author AS author,
    c.body AS body
FROM moderation_reviews AS r FINAL
INNER JOIN
(
    SELECT thread_id, comment_id, author, body FROM comments FINAL
) AS c ON c.thread_id = r.thread_id AND c.comment_id = r.comment_id
WHERE r.reviewed_at >= {since:DateTime64(3, 'UTC')} AND r.reviewed_at <= {until:DateTime64(3, 'UTC')}
ORDER BY r.thread_id, r.comment_id, r.category, r.reviewer
