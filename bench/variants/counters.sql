-- Variant "counters": the extension, immediate mode.
CREATE EXTENSION counters;
SELECT counters.create_counter('blog_posts',
  $$SELECT blog_id, count(*) AS posts, sum(rating) AS rating
      FROM posts
     WHERE is_published AND NOT is_deleted
     GROUP BY blog_id$$);
