/* counters--1.0--1.1.sql: upgrade from version 1.0 to 1.1 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION counters UPDATE" to load this file. \quit

-- The schema counters holds every object of the extension and is one of
-- them, so that pg_dump does not dump it (restoring into a database that
-- has the extension then works).  Version 1.0 had it made by CREATE
-- EXTENSION, outside the extension; a database upgraded from 1.0, or
-- restored from a dump of it (CREATE SCHEMA counters, then CREATE EXTENSION
-- ... WITH SCHEMA counters), has such a schema: it becomes the extension's,
-- provided a superuser owns it.  The extension itself is recorded in
-- pg_catalog (pinned: nothing to depend on).
DO $normalize$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'counters');
    nsp oid := pg_catalog.to_regnamespace('counters');
BEGIN
    IF nsp IS NULL THEN
        CREATE SCHEMA counters;
    ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                       WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                         AND d.objid OPERATOR(pg_catalog.=) nsp
                         AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                         AND d.refobjid OPERATOR(pg_catalog.=) ext
                         AND d.deptype OPERATOR(pg_catalog.=) 'e') THEN
        IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
                  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                 WHERE n.oid OPERATOR(pg_catalog.=) nsp) THEN
            RAISE EXCEPTION 'schema "counters" already exists and is not owned by a superuser'
                USING ERRCODE = '42P06',
                      HINT = 'Drop or rename that schema, then create the extension.';
        END IF;
        DELETE FROM pg_catalog.pg_depend d
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.objid OPERATOR(pg_catalog.=) ext
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) nsp;
        INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
        VALUES ('pg_catalog.pg_namespace'::pg_catalog.regclass, nsp, 0,
                'pg_catalog.pg_extension'::pg_catalog.regclass, ext, 0, 'e');
    END IF;
    DELETE FROM pg_catalog.pg_depend d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.objid OPERATOR(pg_catalog.=) ext
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass;
    UPDATE pg_catalog.pg_extension SET extnamespace = 'pg_catalog'::pg_catalog.regnamespace
     WHERE oid OPERATOR(pg_catalog.=) ext;
END
$normalize$;

GRANT USAGE ON SCHEMA counters TO PUBLIC;
