-- Variant "counters_buffered": the extension, buffered mode (issue 6). Until buffered mode exists,
-- create_counter(..., mode => 'buffered') raises an error and bench/run reports the variant as skipped.
CREATE EXTENSION counters;
SELECT counters.create_counter('blog_posts',
  $$SELECT blog_id, count(*) AS posts, sum(rating) AS rating
      FROM posts
     WHERE is_published AND NOT is_deleted
     GROUP BY blog_id$$,
  mode => 'buffered');
