-- Variant "row_trigger": what most people write by hand. An AFTER ... FOR EACH ROW PL/pgSQL trigger
-- applying the universal formula (subtract value(OLD) at key(OLD), add value(NEW) at key(NEW)) with
-- INSERT ... ON CONFLICT DO UPDATE into blog_counts.
--
-- It keeps a count of non-NULL ratings so that a group whose ratings are all NULL reads NULL, as
-- sum() does, and a NULLS NOT DISTINCT unique key so that a NULL blog_id is one group, as GROUP BY
-- says. It does not delete groups that reach zero; the check reads it through blog_counts_v, which
-- hides them:
--   SELECT blog_id, posts, rating FROM blog_counts_v  ==  the defining query
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

CREATE FUNCTION posts_count_row() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.is_published AND NOT OLD.is_deleted THEN
        INSERT INTO blog_counts AS c (blog_id, posts, rating, rating_nn)
        VALUES (OLD.blog_id, -1, -coalesce(OLD.rating, 0), -(OLD.rating IS NOT NULL)::int)
        ON CONFLICT (blog_id) DO UPDATE
           SET posts     = c.posts     + excluded.posts,
               rating    = c.rating    + excluded.rating,
               rating_nn = c.rating_nn + excluded.rating_nn;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.is_published AND NOT NEW.is_deleted THEN
        INSERT INTO blog_counts AS c (blog_id, posts, rating, rating_nn)
        VALUES (NEW.blog_id, 1, coalesce(NEW.rating, 0), (NEW.rating IS NOT NULL)::int)
        ON CONFLICT (blog_id) DO UPDATE
           SET posts     = c.posts     + excluded.posts,
               rating    = c.rating    + excluded.rating,
               rating_nn = c.rating_nn + excluded.rating_nn;
    END IF;
    RETURN NULL;
END
$f$;

CREATE TRIGGER posts_count AFTER INSERT OR UPDATE OR DELETE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_count_row();
