# Versions: every released version kept in the repository upgrades in place
# to the current one, and what it upgrades to is a fresh install.
#
#  1. A database created with version 1.0 (CREATE EXTENSION counters
#     VERSION '1.0'), with counters of every kind in both modes (keyed,
#     global, an expression key, two keys and a filter, numeric sums, a
#     partitioned source) and writes of every kind, some buffered deltas not
#     yet folded: ALTER EXTENSION counters UPDATE; every counter stays equal
#     to its query, and stays maintained (writes, flush, set_mode both ways,
#     rebuild, drop and declare again, TRUNCATE).
#     The same from version 1.1 (CREATE EXTENSION counters VERSION '1.1'),
#     on a database with a two-phase subscription, whose existing
#     immediate-mode counters read their deltas after set_mode (1.2), and
#     with a deltas table made without fill factor 50, which it gets.
#  2. The upgraded databases equal a database where the current version
#     was installed fresh and the same counters declared: the extension's
#     own objects (members, functions, tables, views, triggers, event
#     triggers, privileges, comments) and everything pg_dump --schema-only
#     writes.
#  3. A dump of the 1.0 database restores into a fresh database (which
#     installs the current version), strictly; its counters are exact and
#     maintained.
#  4. A database made by a build from before buffered mode (which called
#     itself 1.0 too; here simulated by removing what buffered mode added):
#     writes to a counted table fail with an error that says to run ALTER
#     EXTENSION counters UPDATE, never with a missing column; after it, the
#     counters are exact and can be switched to buffered mode.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'counters'
counters.flush_interval = 0
log_min_messages = warning
});
$node->start;

my %counters = (
	'public.c_key' => 'SELECT blog, count(*) AS n, sum(rating) AS r FROM public.posts GROUP BY blog',
	'public.c_key_b' => 'SELECT blog, count(*) AS n, sum(rating) AS r FROM public.posts GROUP BY blog',
	'public.c_glob' => 'SELECT count(*) AS n, sum(amount) AS total FROM public.posts',
	'public.c_glob_b' => 'SELECT count(*) AS n, sum(amount) AS total FROM public.posts',
	'public.c_day' =>
	  q{SELECT date_trunc('day', created) AS day, count(*) AS n FROM public.posts GROUP BY 1},
	'public.c_two' =>
	  'SELECT blog, author, count(*) AS n, sum(rating) AS r FROM public.posts WHERE published GROUP BY blog, author',
	'app.c_part' => 'SELECT region, count(*) AS n, sum(v) AS s FROM app.events GROUP BY region',
	'app.c_part_b' => 'SELECT count(*) AS n FROM app.events',);
my %mode = ('public.c_key_b' => 'buffered', 'public.c_glob_b' => 'buffered', 'app.c_part_b' => 'buffered');

my $schema = q{
CREATE SCHEMA app;
CREATE TABLE public.posts (id int PRIMARY KEY, blog int, author text, published bool,
                           rating int, amount numeric, created timestamp);
CREATE TABLE app.events (id int, region text, v int) PARTITION BY LIST (region);
CREATE TABLE app.events_eu PARTITION OF app.events FOR VALUES IN ('eu');
CREATE TABLE app.events_rest PARTITION OF app.events DEFAULT;
INSERT INTO public.posts SELECT g, g % 9, 'a' || g % 4, g % 3 <> 0, g % 11, (g % 7) / 3.0,
                                '2026-01-01'::timestamp + g * interval '5 hours'
  FROM generate_series(1, 400) g;
INSERT INTO app.events SELECT g, (ARRAY['eu', 'us', 'asia'])[g % 3 + 1], g % 5 FROM generate_series(1, 300) g;
} . join(
	'',
	map {
		my $q = $counters{$_};
		$q =~ s/'/''/g;
		"SELECT counters.create_counter('$_', '$q', '" . ($mode{$_} // 'immediate') . "');\n"
	} sort keys %counters);

my $writes = q{
INSERT INTO public.posts SELECT g, g % 13, 'b' || g % 3, true, g % 5, g / 7.0, '2026-03-01'::timestamp + g * interval '1 hour'
  FROM generate_series(1001, 1100) g;
UPDATE public.posts SET blog = blog + 1, rating = rating + 2 WHERE id % 7 = 0;
UPDATE public.posts SET published = NOT published WHERE id % 5 = 0;
DELETE FROM public.posts WHERE id % 11 = 0;
INSERT INTO app.events VALUES (5000, 'eu', 1), (5001, 'mars', 2);
UPDATE app.events SET region = 'eu' WHERE id % 10 = 0;
DELETE FROM app.events WHERE id % 12 = 0;
};

# every counter equal to its query (EXCEPT ALL both ways) and verify() empty
sub check_exact
{
	my ($db, $when) = @_;
	foreach my $c (sort keys %counters)
	{
		my $q = $counters{$c};
		is( $node->safe_psql(
				$db, qq{
SELECT (SELECT count(*) FROM (SELECT * FROM $c EXCEPT ALL ($q)) d)
     + (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $c) d)
     + (SELECT count(*) FROM counters.verify('$c'))}),
			'0',
			"$when: $c equals its query");
	}
	return;
}

# what the extension's own objects are, as text (names, definitions,
# privileges, comments, firing modes)
sub extension_objects
{
	my ($db) = @_;
	return $node->safe_psql(
		$db, q{
SELECT 'extension ' || extversion || ' in ' || extnamespace::regnamespace || ' relocatable ' || extrelocatable
       || ' config ' || (SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(extconfig) c)
  FROM pg_extension WHERE extname = 'counters'
UNION ALL
SELECT * FROM (
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'counters') ORDER BY 1) m
UNION ALL
SELECT * FROM (
  SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
         || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
    FROM pg_proc p WHERE p.pronamespace = 'counters'::regnamespace ORDER BY 1) f
UNION ALL
SELECT * FROM (
  SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, '-')
         || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
         || ' columns ' || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                                         || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                         ', ' ORDER BY a.attnum)
                                        FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '-')
         || coalesce(' view ' || pg_get_viewdef(c.oid), '')
    FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
   ORDER BY 1) r
UNION ALL
SELECT * FROM (
  SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'counters'::regnamespace ORDER BY 1) k
UNION ALL
SELECT * FROM (
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i
   WHERE i.indrelid = 'counters.counter_def'::regclass ORDER BY 1) i
UNION ALL
SELECT * FROM (
  SELECT 'trigger ' || tgname || ' ' || tgenabled::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger
   WHERE tgrelid = 'counters.counter_def'::regclass ORDER BY 1) t
UNION ALL
SELECT * FROM (
  SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtenabled::text || ' ' || evtfoid::regprocedure
         || ' ' || coalesce(evttags::text, '-') FROM pg_event_trigger ORDER BY 1) e
UNION ALL
SELECT 'schema ' || nspname || ' acl ' || coalesce(nspacl::text, '-') || ' owner ' || nspowner::regrole
  FROM pg_namespace WHERE nspname = 'counters'
});
}

sub schema_dump
{
	my ($db) = @_;
	my ($out, $err) = run_command([ 'pg_dump', '-s', '-d', $node->connstr($db) ]);
	is($err, '', "pg_dump -s of $db");
	# pg_dump brackets a plain dump with \restrict and \unrestrict and a
	# key drawn at random for each dump
	$out =~ s/^\\(?:un)?restrict \S+$//mg;
	return $out;
}

# text_diff(a, b): a unified diff of two texts, for diagnostics
sub text_diff
{
	my ($a, $b) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir;
	PostgreSQL::Test::Utils::append_to_file("$dir/expected", $a);
	PostgreSQL::Test::Utils::append_to_file("$dir/got", $b);
	my ($out, $err) = run_command([ 'diff', '-u', "$dir/expected", "$dir/got" ]);
	return $out . $err;
}

# extversion(DB): the version of counters installed in DB
sub extversion
{
	my ($db) = @_;
	return $node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'counters'});
}

# the version a fresh CREATE EXTENSION installs
my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'counters'});
is($current, '1.2', 'the current version is 1.2');

# ---------------------------------------------------------------------------
# 1. 1.0, counters, writes, ALTER EXTENSION UPDATE
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', "CREATE EXTENSION counters VERSION '1.0'");
is(extversion('old'), '1.0', 'version 1.0 installed');
$node->safe_psql('old', $schema . $writes);
check_exact('old', '1.0');
isnt($node->safe_psql('old', q{SELECT count(*) FROM counters.counter_def d, LATERAL (SELECT 1) x
   WHERE mode = 'buffered' AND (SELECT count(*) > 0 FROM pg_class WHERE oid = d.deltas)}), '0',
	'1.0: buffered counters');

# a dump of the 1.0 database, for 3.
my ($old_dump, $dump_err) = run_command([ 'pg_dump', '-d', $node->connstr('old') ]);
is($dump_err, '', 'pg_dump of the 1.0 database');

$node->safe_psql('old', 'ALTER EXTENSION counters UPDATE');
is(extversion('old'), $current, "ALTER EXTENSION counters UPDATE brings $current");
check_exact('old', 'upgraded');
is( $node->safe_psql('old', q{SELECT count(*) FROM counters.counter_def d JOIN pg_class c ON c.oid IN (d.storage, d.deltas, d.definition)
   WHERE c.relnamespace <> 'counters'::regnamespace}),
	'0', 'upgraded: hidden relations moved into the schema counters');

# ---------------------------------------------------------------------------
# 1.1, counters, a two-phase subscription, writes, ALTER EXTENSION UPDATE
# ---------------------------------------------------------------------------
my $reads_deltas = q{SELECT string_agg(c.counter::text, ',' ORDER BY c.counter::text)
  FROM counters.counter_def c WHERE c.mode = 'immediate' AND EXISTS (SELECT FROM pg_depend d
   JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = c.counter AND d.refobjid = c.deltas)};
$node->safe_psql('postgres', 'CREATE DATABASE v11');
$node->safe_psql('v11', "CREATE EXTENSION counters VERSION '1.1'");
is(extversion('v11'), '1.1', 'version 1.1 installed');
$node->safe_psql('v11', $schema . $writes);
$node->safe_psql('v11', q{CREATE SUBSCRIPTION regress_tp CONNECTION 'dbname=nowhere' PUBLICATION p
  WITH (connect = false, two_phase = true)});
# tables made by a library from before fill factor 50 on deltas tables
$node->safe_psql('v11', q{SELECT format('ALTER TABLE %s RESET (fillfactor)', deltas) FROM counters.counter_def
  WHERE counter = 'public.c_key_b'::regclass \gexec});
my $fillfactors = q{SELECT string_agg(c.relname || '=' || coalesce(array_to_string(c.reloptions, ','), ''), ' ' ORDER BY c.relname)
  FROM counters.counter_def d JOIN pg_class c ON c.oid IN (d.storage, d.deltas)
  WHERE NOT coalesce('fillfactor=50' = ANY (c.reloptions), false)};
like($node->safe_psql('v11', $fillfactors), qr/c_key_b\.deltas=/, '1.1: a deltas table without fill factor 50');
check_exact('v11', '1.1');
$node->safe_psql('v11', 'ALTER EXTENSION counters UPDATE');
is(extversion('v11'), $current, "1.1: ALTER EXTENSION counters UPDATE brings $current");
check_exact('v11', '1.1 upgraded');
is($node->safe_psql('v11', $reads_deltas), '', '1.1 upgraded: existing counters keep their views');
is($node->safe_psql('v11', $fillfactors), '', '1.1 upgraded: every storage and deltas table has fill factor 50');
$node->safe_psql('v11', q{SELECT counters.set_mode(counter, 'immediate') FROM counters.counter_def
  WHERE mode = 'immediate'});
is($node->safe_psql('v11', $reads_deltas), 'app.c_part,c_day,c_glob,c_key,c_two',
	'1.1 upgraded, two-phase subscriber: set_mode gives immediate counters views that read their deltas');
$node->safe_psql('v11', $writes =~ s/1001, 1100/4001, 4100/r =~ s/5000/9000/r =~ s/5001/9001/r);
check_exact('v11', '1.1 upgraded, counters reading their deltas');
$node->safe_psql('v11', q{ALTER SUBSCRIPTION regress_tp SET (slot_name = NONE); DROP SUBSCRIPTION regress_tp});
$node->safe_psql('v11', q{SELECT counters.set_mode(counter, 'immediate') FROM counters.counter_def
  WHERE mode = 'immediate'});
is($node->safe_psql('v11', $reads_deltas), '', '... and plain views again without the subscription');
check_exact('v11', '1.1 upgraded, subscription dropped');

# ---------------------------------------------------------------------------
# the same counters in a fresh database of the current version
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION counters');
is(extversion('fresh'), $current, "a fresh install is $current");
$node->safe_psql('fresh', $schema . $writes);
check_exact('fresh', "fresh $current");

# maintained after the upgrade, as in a fresh install
foreach my $db ('old', 'v11', 'fresh')
{
	$node->safe_psql($db, $writes =~ s/1001, 1100/2001, 2100/r =~ s/5000/6000/r =~ s/5001/6001/r);
	check_exact($db, "$db: after more writes");
	$node->safe_psql($db, 'SELECT counters.flush()');
	check_exact($db, "$db: after flush");
	$node->safe_psql($db, q{SELECT counters.set_mode('public.c_key', 'buffered'), counters.set_mode('public.c_key_b', 'immediate')});
	$node->safe_psql($db, q{UPDATE public.posts SET rating = rating + 1 WHERE id % 3 = 0});
	$node->safe_psql($db, q{SELECT counters.set_mode('public.c_key', 'immediate'), counters.set_mode('public.c_key_b', 'buffered')});
	check_exact($db, "$db: after set_mode both ways");
	is($node->safe_psql($db, q{SELECT counters.rebuild('public.c_two')}), '0', "$db: rebuild finds nothing to repair");
	my $q = $counters{'public.c_day'} =~ s/'/''/gr;
	$node->safe_psql($db, qq{SELECT counters.drop_counter('public.c_day'); SELECT counters.create_counter('public.c_day', '$q')});
	$node->safe_psql($db, q{TRUNCATE app.events_rest; INSERT INTO app.events VALUES (7000, 'asia', 3)});
	check_exact($db, "$db: after drop, declare again, truncate of a partition");
}

# ---------------------------------------------------------------------------
# 2. the upgraded database is a fresh install
# ---------------------------------------------------------------------------
my $fresh_objects = extension_objects('fresh');
my $fresh_schema = schema_dump('fresh');
foreach my $db ('old', 'v11')
{
	my $objects = extension_objects($db);
	is($objects, $fresh_objects, "$db: the upgraded extension's objects equal a fresh install's")
	  or diag(text_diff($fresh_objects, $objects));
	my $schema_text = schema_dump($db);
	is($schema_text, $fresh_schema, "$db: pg_dump -s of the upgraded database equals that of the fresh one")
	  or diag(text_diff($fresh_schema, $schema_text));
}

# ---------------------------------------------------------------------------
# 3. a dump of 1.0 restores into a fresh database
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE from_old_dump');
my ($rc, $out, $err);
$rc = $node->psql('from_old_dump', $old_dump, on_error_stop => 1, stderr => \$err,
	extra_params => ['--single-transaction']);
is($rc, 0, 'a dump of 1.0 restores into a fresh database, strictly') or diag($err);
is(extversion('from_old_dump'), $current, "... which installs $current");
check_exact('from_old_dump', 'restored from a 1.0 dump');
$node->safe_psql('from_old_dump', $writes =~ s/1001, 1100/3001, 3100/r =~ s/5000/8000/r =~ s/5001/8001/r);
$node->safe_psql('from_old_dump', 'SELECT counters.flush()');
check_exact('from_old_dump', 'restored from a 1.0 dump, after writes and flush');

# ---------------------------------------------------------------------------
# 4. a build from before buffered mode
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE prebuffered');
$node->safe_psql('prebuffered', "CREATE EXTENSION counters VERSION '1.0'");
$node->safe_psql('prebuffered', $schema =~ s/, '(buffered)'\)/, 'immediate')/gr);
# what buffered mode added: the deltas column and tables, flush(), set_mode()
$node->safe_psql(
	'prebuffered', q{
SET session_replication_role = replica;
SELECT format('DROP TABLE %s', deltas) FROM counters.counter_def \gexec
ALTER TABLE counters.counter_def DROP COLUMN deltas;
ALTER EXTENSION counters DROP FUNCTION counters.flush(regclass);
ALTER EXTENSION counters DROP FUNCTION counters.set_mode(regclass, text);
DROP FUNCTION counters.flush(regclass);
DROP FUNCTION counters.set_mode(regclass, text);
});
($rc, $out, $err) = $node->psql('prebuffered', 'INSERT INTO public.posts VALUES (9000, 1, $$x$$, true, 1, 1, now())');
isnt($rc, 0, 'a write to a counted table of a pre-buffered database fails');
like($err, qr/the counters extension in this database is older than its library/, '... saying why');
like($err, qr/Run ALTER EXTENSION counters UPDATE/, '... and what to do');
unlike($err, qr/column .* does not exist/, '... never with a missing column');
$node->safe_psql('prebuffered', 'ALTER EXTENSION counters UPDATE');
$node->safe_psql('prebuffered', $writes);
%mode = ();
check_exact('prebuffered', 'pre-buffered database, upgraded');
$node->safe_psql('prebuffered', q{SELECT counters.set_mode('public.c_key', 'buffered')});
$node->safe_psql('prebuffered', 'UPDATE public.posts SET rating = rating + 3 WHERE id % 4 = 0');
check_exact('prebuffered', 'pre-buffered database, a counter switched to buffered mode');

$node->stop;
done_testing();
