-- title: Flagged share by hour
-- description: Comments per hour (UTC), how many were flagged (optionally in one category only),
--   the flagged share, and the category that fired most often that hour.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest posted_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest posted_at included
-- param: category | String | '' | count only this flag category ('' = any category)
SELECT
    toStartOfHour(posted_at) AS hour,
    count() AS comments,
    countIf(notEmpty(flags) AND ({category:String} = '' OR has(flags, {category:String}))) AS flagged,
    round(flagged / comments, 4) AS flagged_share,
    arrayStringConcat(topKArray(1)(flags), '') AS top_category
FROM comments FINAL
WHERE posted_at >= {since:DateTime64(3, 'UTC')} AND posted_at <= {until:DateTime64(3, 'UTC')}
GROUP BY hour
ORDER BY hour
