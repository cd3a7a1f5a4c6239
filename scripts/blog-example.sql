-- scripts/blog-example.sql -- the blog example from the README, loaded by scripts/dev.
--
-- Needs the extension first:  CREATE EXTENSION counters;
-- Then:                       psql -v ON_ERROR_STOP=1 -d blog -f scripts/blog-example.sql
--
-- Two source tables with sample rows, and two counters over them:
--   user_blog_posts       published, not deleted posts and their total rating per (user_id, blog_id)
--   unread_notifications  unread notifications per user_id
-- After loading, every write to posts or notification keeps both counters exact, e.g.
--   UPDATE posts SET is_published = true WHERE id = 4;
--   SELECT * FROM user_blog_posts ORDER BY user_id, blog_id;
--   SELECT * FROM counters.verify('user_blog_posts');   -- no rows: the counter is exact

BEGIN;

CREATE TABLE posts (
    id           bigserial PRIMARY KEY,
    user_id      int,
    blog_id      int,
    is_published bool NOT NULL DEFAULT false,
    is_deleted   bool NOT NULL DEFAULT false,
    rating       int
);

INSERT INTO posts (user_id, blog_id, is_published, is_deleted, rating) VALUES
    (1, 10, true,  false, 5),
    (1, 10, true,  false, 3),
    (1, 10, true,  false, NULL),   -- counted in posts; sum(rating) ignores NULL
    (1, 10, false, false, 4),      -- draft: not counted
    (1, 11, true,  false, 1),
    (1, 11, true,  true,  5),      -- deleted: not counted
    (2, 10, true,  false, 2),
    (2, 10, true,  false, 2),
    (2, 20, false, false, 5),      -- user 2's only post in blog 20 is a draft: no row
    (3, 30, true,  false, 4),
    (3, 30, true,  false, 4),
    (3, 30, true,  false, 1);

CREATE TABLE notification (
    id         bigserial PRIMARY KEY,
    user_id    int,
    has_readed bool NOT NULL DEFAULT false
);

INSERT INTO notification (user_id, has_readed) VALUES
    (1, false),
    (1, false),
    (1, true),
    (2, false),
    (2, true),
    (2, true),
    (3, true),                     -- user 3 has read everything: no row
    (4, false),
    (4, false),
    (4, false);

SELECT counters.create_counter('user_blog_posts', $$SELECT user_id, blog_id, count(*) AS posts, sum(rating) AS rating FROM posts WHERE is_published AND NOT is_deleted GROUP BY user_id, blog_id$$);

SELECT counters.create_counter('unread_notifications', $$SELECT user_id, count(*) AS unread FROM notification WHERE NOT has_readed GROUP BY user_id$$);

COMMIT;
