-- title: Author profile
-- description: One author at a glance: volume, threads, first and last comment, flags and their
--   categories, mean toxicity, languages, top-level comments and the replies they received.
--   No row when the author has no comment in the range.
-- param: author | String | required | the author's name, exactly as in comments.author
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest posted_at included
SELECT
    author,
    count() AS comments,
    uniqExact(thread_id) AS threads,
    min(posted_at) AS first_comment,
    max(posted_at) AS last_comment,
    countIf(notEmpty(flags)) AS flagged,
    round(flagged / comments, 4) AS flagged_share,
    arrayStringConcat(arraySort(groupUniqArrayArray(flags)), ', ') AS categories,
    round(avg(toxicity), 4) AS mean_toxicity,
    arrayStringConcat(arraySort(groupUniqArray(toString(language))), ', ') AS languages,
    countIf(parent_id IS NULL) AS top_level_comments,
    (
        SELECT count()
        FROM comments AS r FINAL
        INNER JOIN
        (
            SELECT thread_id, comment_id FROM comments FINAL
            WHERE author = {author:String}
              AND posted_at >= {since:DateTime64(3, 'UTC')} AND posted_at <= {until:DateTime64(3, 'UTC')}
        ) AS p ON p.thread_id = r.thread_id AND p.comment_id = r.parent_id
        WHERE r.author != {author:String}
    ) AS replies_received
FROM comments FINAL
WHERE author = {author:String}
  AND posted_at >= {since:DateTime64(3, 'UTC')} AND posted_at <= {until:DateTime64(3, 'UTC')}
GROUP BY author
