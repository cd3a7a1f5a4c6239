--
-- blog_posts: the seed scenario "how to count counters and not lose count".
-- Posts per (user, blog), published and not deleted, with their rating sum,
-- through publish/unpublish, soft delete/restore, moves between blogs and
-- authors, rating changes, hard deletes and bulk updates by condition.
-- After every step every counter is compared with its defining query.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_blog;
SET search_path = regress_blog, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

CREATE TABLE blog (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE post (
    id           int PRIMARY KEY,
    user_id      int NOT NULL,
    blog_id      int NOT NULL REFERENCES blog ON UPDATE CASCADE ON DELETE CASCADE,
    title        text NOT NULL,
    body         text,
    is_published boolean NOT NULL DEFAULT false,
    is_deleted   boolean NOT NULL DEFAULT false,
    rating       integer NOT NULL DEFAULT 0
);
INSERT INTO blog VALUES (1, 'PostgreSQL'), (2, 'Python'), (3, 'Travel'), (4, 'Empty');

-- posts that exist before the counters: create_counter fills from them
INSERT INTO post (id, user_id, blog_id, title, is_published, rating) VALUES
    (1, 1, 1, 'Counters are hard', true, 10),
    (2, 1, 1, 'Draft about MVCC', false, 0),
    (3, 2, 1, 'Triggers 101', true, 3),
    (4, 2, 2, 'Django signals', true, -2);

-- the counter of the seed article: posts and rating per (user, blog)
SELECT make_counter('user_blog_posts',
  $$SELECT user_id, blog_id, count(*) AS posts, sum(rating) AS rating
      FROM post
     WHERE is_published AND NOT is_deleted
     GROUP BY user_id, blog_id$$);
-- the simpler counters of the article on the same source
SELECT make_counter('blog_posts',
  $$SELECT blog_id, count(*) AS posts FROM post WHERE is_published AND NOT is_deleted GROUP BY blog_id$$);
SELECT make_counter('user_posts_incl_drafts',
  $$SELECT user_id, count(*) AS posts FROM post WHERE NOT is_deleted GROUP BY user_id$$);
SELECT make_counter('published_posts',
  $$SELECT count(*) AS posts, sum(rating) AS rating FROM post WHERE is_published AND NOT is_deleted$$);
SELECT chk_all() AS "filled from existing posts";

-- reading a counter as the article's profile page would
SELECT (SELECT posts FROM user_blog_posts WHERE user_id = 1 AND blog_id = 1)
       = (SELECT count(*) FROM post WHERE user_id = 1 AND blog_id = 1 AND is_published AND NOT is_deleted)
       AS profile_count_right;

-- a draft is created
INSERT INTO post (id, user_id, blog_id, title) VALUES (5, 3, 2, 'Half-written');
SELECT chk_all() AS "draft created";

-- the draft is published
UPDATE post SET is_published = true, rating = 4 WHERE id = 5;
SELECT chk_all() AS "draft published";

-- a post is created already published
INSERT INTO post (id, user_id, blog_id, title, is_published, rating)
VALUES (6, 3, 2, 'Straight to the front page', true, 7);
SELECT chk_all() AS "created published";

-- unpublish
UPDATE post SET is_published = false WHERE id = 1;
SELECT chk_all() AS "unpublished";

-- publish again
UPDATE post SET is_published = true WHERE id = 1;
SELECT chk_all() AS "published again";

-- soft delete
UPDATE post SET is_deleted = true WHERE id = 3;
SELECT chk_all() AS "soft deleted";
-- the group (2, 1) has no counted post left: its row is gone
SELECT NOT EXISTS (SELECT FROM user_blog_posts WHERE user_id = 2 AND blog_id = 1) AS group_row_gone;

-- restore
UPDATE post SET is_deleted = false WHERE id = 3;
SELECT chk_all() AS "restored";
SELECT EXISTS (SELECT FROM user_blog_posts WHERE user_id = 2 AND blog_id = 1) AS group_row_back;

-- unpublish and delete in one statement, then restore and publish in one
UPDATE post SET is_published = false, is_deleted = true WHERE id = 6;
SELECT chk_all() AS "unpublished and deleted at once";
UPDATE post SET is_published = true, is_deleted = false WHERE id = 6;
SELECT chk_all() AS "restored and published at once";

-- "this can happen too": a deleted draft gets published (still not counted)
UPDATE post SET is_deleted = true WHERE id = 2;
SELECT storage_state() AS st0 \gset
UPDATE post SET is_published = true WHERE id = 2;
SELECT chk_all() AS "deleted draft published";
SELECT storage_state() = :'st0' AS counted_nothing_wrote_nothing;
UPDATE post SET is_deleted = false, is_published = false WHERE id = 2;
SELECT chk_all() AS "draft restored";

-- move a post to another blog
UPDATE post SET blog_id = 3 WHERE id = 1;
SELECT chk_all() AS "moved to another blog";

-- give a post to another author
UPDATE post SET user_id = 4 WHERE id = 4;
SELECT chk_all() AS "given to another author";

-- move blog and author at once
UPDATE post SET user_id = 1, blog_id = 2 WHERE id = 5;
SELECT chk_all() AS "moved blog and author";

-- move a draft (counted only by user_posts_incl_drafts, which has no blog)
SELECT storage_state() AS st0 \gset
UPDATE post SET blog_id = 4 WHERE id = 2;
SELECT chk_all() AS "draft moved";
SELECT storage_state() = :'st0' AS counted_nothing_wrote_nothing;

-- rating changes: up, down, below zero, back to zero
UPDATE post SET rating = rating + 5 WHERE id = 1;
SELECT chk_all() AS "rating up";
UPDATE post SET rating = rating - 20 WHERE id = 1;
SELECT chk_all() AS "rating below zero";
UPDATE post SET rating = 0 WHERE id IN (1, 3, 4, 5, 6);
SELECT chk_all() AS "ratings zero";
UPDATE post SET rating = 3 * id WHERE id IN (1, 3, 4, 5, 6);
SELECT chk_all() AS "ratings set";

-- rating of a draft: counted only by counters without rating, nothing to write
SELECT storage_state() AS st0 \gset
UPDATE post SET rating = 100 WHERE id = 2;
SELECT chk_all() AS "draft rating";
SELECT storage_state() = :'st0' AS counted_nothing_wrote_nothing;

-- an ORM saving every column of a post whose title changed
SELECT storage_state() AS st0 \gset
UPDATE post SET user_id = user_id, blog_id = blog_id, title = title || '!', body = 'edited',
                is_published = is_published, is_deleted = is_deleted, rating = rating
 WHERE id IN (1, 3, 5);
SELECT chk_all() AS "edited titles";
SELECT storage_state() = :'st0' AS counted_nothing_wrote_nothing;

-- two posts swap authors with the same rating: net change zero everywhere
UPDATE post SET rating = 9 WHERE id IN (3, 6);
SELECT storage_state() AS st0 \gset
UPDATE post SET user_id = CASE id WHEN 3 THEN 3 ELSE 2 END,
                blog_id = CASE id WHEN 3 THEN 2 ELSE 1 END
 WHERE id IN (3, 6);
SELECT chk_all() AS "swapped";
SELECT storage_state() = :'st0' AS counted_nothing_wrote_nothing;

-- hard delete of a published post and of a draft
DELETE FROM post WHERE id = 4;
SELECT chk_all() AS "published post hard deleted";
DELETE FROM post WHERE id = 2;
SELECT chk_all() AS "draft hard deleted";

-- many posts at once, raw SQL
INSERT INTO post (id, user_id, blog_id, title, is_published, is_deleted, rating)
SELECT g, 1 + g % 7, 1 + g % 4, 'post ' || g, g % 4 <> 0, g % 9 = 0, g % 11 - 5
  FROM generate_series(100, 1099) g;
SELECT chk_all() AS "bulk insert";

-- bulk updates by condition
UPDATE post SET is_published = false WHERE blog_id = 2 AND rating < 0;
SELECT chk_all() AS "bulk unpublish by condition";
UPDATE post SET is_deleted = true WHERE user_id = 3;
SELECT chk_all() AS "bulk soft delete of an author";
UPDATE post SET is_deleted = false WHERE user_id = 3 AND id % 2 = 0;
SELECT chk_all() AS "bulk partial restore";
UPDATE post SET blog_id = 3 WHERE user_id = 1;
SELECT chk_all() AS "bulk move of an author to a blog";
UPDATE post SET user_id = 7 WHERE user_id = 5 AND blog_id IN (1, 2);
SELECT chk_all() AS "bulk change of author";
UPDATE post SET rating = rating * 2 WHERE rating > 0;
SELECT chk_all() AS "bulk rating change";
UPDATE post SET is_published = NOT is_published, rating = -rating WHERE id % 5 = 0;
SELECT chk_all() AS "bulk toggle";

-- a blog is renumbered: ON UPDATE CASCADE moves its posts
UPDATE blog SET id = 30 WHERE id = 3;
SELECT chk_all() AS "blog renumbered by cascade";

-- a blog is removed: ON DELETE CASCADE hard deletes its posts
DELETE FROM blog WHERE id = 2;
SELECT chk_all() AS "blog deleted by cascade";

-- bulk hard delete by condition
DELETE FROM post WHERE rating < 0 OR id % 3 = 0;
SELECT chk_all() AS "bulk hard delete";

-- everything inside one transaction, checked before and after commit
BEGIN;
INSERT INTO post (id, user_id, blog_id, title, is_published, rating) VALUES (2000, 9, 1, 'In a transaction', true, 1);
UPDATE post SET blog_id = 1 WHERE blog_id = 30 AND user_id = 2;
DELETE FROM post WHERE user_id = 6;
SELECT chk_all() AS "inside a transaction";
COMMIT;
SELECT chk_all() AS "committed";

-- every post removed: keyed counters are empty, the global one has one row
DELETE FROM post;
SELECT chk_all() AS "all posts deleted";
SELECT (SELECT count(*) FROM user_blog_posts) = 0 AS no_groups_left,
       (SELECT posts = 0 AND rating IS NULL FROM published_posts) AS global_row_zero;

-- posts again after the table was emptied
INSERT INTO post (id, user_id, blog_id, title, is_published, rating)
VALUES (1, 1, 1, 'Starting over', true, 1), (2, 1, 1, 'Again', true, 2);
SELECT chk_all() AS "starting over";

-- clean up: dropping the counters removes the triggers from post
SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'post'::regclass AND tgname LIKE 'counters%';
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_blog CASCADE;
