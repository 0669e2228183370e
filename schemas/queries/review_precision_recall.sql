-- title: Review precision and recall
-- description: How right the flags were by moderators' verdicts (moderation_reviews, stored by
--   `streams review` / POST /reviews), per day of review, flag category and model_version (the
--   moderation model version the comment was scored with): confirmed flags, rejected flags (false
--   positives) and missed ones (false negatives), precision = confirmed / (confirmed + rejected)
--   and recall = confirmed / (confirmed + missed), NULL when there is no verdict on that side.
--   Each reviewer's latest verdict counts once. Recall only sees the misses moderators found, so
--   it is an upper bound.
-- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest reviewed_at included
-- param: until | DateTime64(3, 'UTC') | 2100-01-01 00:00:00 | latest reviewed_at included
-- param: category | String | '' | only this flag category ('' = every category)
SELECT
    toDate(reviewed_at) AS day,
    category,
    model_version,
    countIf(verdict = 'confirm') AS confirmed,
    countIf(verdict = 'reject') AS rejected,
    countIf(verdict = 'missed') AS missed,
    if(confirmed + rejected = 0, NULL, round(confirmed / (confirmed + rejected), 4)) AS precision,
    if(confirmed + missed = 0, NULL, round(confirmed / (confirmed + missed), 4)) AS recall
FROM moderation_reviews FINAL
WHERE reviewed_at >= {since:DateTime64(3, 'UTC')} AND reviewed_at <= {until:DateTime64(3, 'UTC')}
    AND ({category:String} = '' OR category = {category:String})
GROUP BY day, category, model_version
ORDER BY day, category, model_version
