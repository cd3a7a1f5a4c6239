-- Variant "stmt_trigger": what the best hand-written solutions look like. AFTER ... FOR EACH STATEMENT
-- PL/pgSQL triggers with transition tables: aggregate the statement's changes per key, then one
-- INSERT ... ON CONFLICT DO UPDATE, in key order (so concurrent statements lock counter rows in the
-- same order), skipping keys whose delta is zero.
--
-- Same storage and the same reading view as row_trigger (zero groups are kept, hidden by the view).
CREATE TABLE blog_counts (
    blog_id   int,
    posts     bigint NOT NULL DEFAULT 0,
    rating    bigint NOT NULL DEFAULT 0,
    rating_nn bigint NOT NULL DEFAULT 0,
    CONSTRAINT blog_counts_key UNIQUE NULLS NOT DISTINCT (blog_id)
);

CREATE VIEW blog_counts_v AS
    SELECT blog_id, posts, CASE WHEN rating_nn > 0 THEN rating END AS rating
      FROM blog_counts
     WHERE posts <> 0;

CREATE FUNCTION posts_count_ins() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO blog_counts AS c (blog_id, posts, rating, rating_nn)
    SELECT blog_id, count(*), coalesce(sum(rating), 0), count(rating)
      FROM new_rows
     WHERE is_published AND NOT is_deleted
     GROUP BY blog_id
     ORDER BY blog_id
    ON CONFLICT (blog_id) DO UPDATE
       SET posts     = c.posts     + excluded.posts,
           rating    = c.rating    + excluded.rating,
           rating_nn = c.rating_nn + excluded.rating_nn;
    RETURN NULL;
END
$f$;

CREATE FUNCTION posts_count_del() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO blog_counts AS c (blog_id, posts, rating, rating_nn)
    SELECT blog_id, -count(*), -coalesce(sum(rating), 0), -count(rating)
      FROM old_rows
     WHERE is_published AND NOT is_deleted
     GROUP BY blog_id
     ORDER BY blog_id
    ON CONFLICT (blog_id) DO UPDATE
       SET posts     = c.posts     + excluded.posts,
           rating    = c.rating    + excluded.rating,
           rating_nn = c.rating_nn + excluded.rating_nn;
    RETURN NULL;
END
$f$;

CREATE FUNCTION posts_count_upd() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO blog_counts AS c (blog_id, posts, rating, rating_nn)
    SELECT blog_id, sum(d_posts), sum(d_rating), sum(d_nn)
      FROM (SELECT blog_id, 1 AS d_posts, coalesce(rating, 0) AS d_rating,
                   (rating IS NOT NULL)::int AS d_nn
              FROM new_rows
             WHERE is_published AND NOT is_deleted
            UNION ALL
            SELECT blog_id, -1, -coalesce(rating, 0), -(rating IS NOT NULL)::int
              FROM old_rows
             WHERE is_published AND NOT is_deleted) d
     GROUP BY blog_id
    HAVING sum(d_posts) <> 0 OR sum(d_rating) <> 0 OR sum(d_nn) <> 0
     ORDER BY blog_id
    ON CONFLICT (blog_id) DO UPDATE
       SET posts     = c.posts     + excluded.posts,
           rating    = c.rating    + excluded.rating,
           rating_nn = c.rating_nn + excluded.rating_nn;
    RETURN NULL;
END
$f$;

CREATE TRIGGER posts_count_ins AFTER INSERT ON posts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION posts_count_ins();
CREATE TRIGGER posts_count_upd AFTER UPDATE ON posts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION posts_count_upd();
CREATE TRIGGER posts_count_del AFTER DELETE ON posts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION posts_count_del();
