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
#  2. The upgraded database equals a database where version 1.1 was
#     installed fresh and the same counters declared: the extension's own
#     objects (members, functions, tables, views, triggers, event triggers,
#     privileges, comments) and everything pg_dump --schema-only writes.
#  3. A dump of the 1.0 database restores into a fresh database (which
#     installs 1.1), strictly; its counters are exact and maintained.
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
is(extversion('old'), '1.1', 'ALTER EXTENSION counters UPDATE brings 1.1');
check_exact('old', 'upgraded');
is( $node->safe_psql('old', q{SELECT count(*) FROM counters.counter_def d JOIN pg_class c ON c.oid IN (d.storage, d.deltas, d.definition)
   WHERE c.relnamespace <> 'counters'::regnamespace}),
	'0', 'upgraded: hidden relations moved into the schema counters');

# ---------------------------------------------------------------------------
# the same counters in a fresh 1.1 database
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION counters');
is(extversion('fresh'), '1.1', 'a fresh install is 1.1');
$node->safe_psql('fresh', $schema . $writes);
check_exact('fresh', 'fresh 1.1');

# maintained after the upgrade, as in a fresh install
foreach my $db ('old', 'fresh')
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
my $old_objects = extension_objects('old');
my $fresh_objects = extension_objects('fresh');
is($old_objects, $fresh_objects, "the upgraded extension's objects equal a fresh install's")
  or diag(text_diff($fresh_objects, $old_objects));
my $old_schema = schema_dump('old');
my $fresh_schema = schema_dump('fresh');
is($old_schema, $fresh_schema, 'pg_dump -s of the upgraded database equals that of the fresh one')
  or diag(text_diff($fresh_schema, $old_schema));

# ---------------------------------------------------------------------------
# 3. a dump of 1.0 restores into a fresh database
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE from_old_dump');
my ($rc, $out, $err);
$rc = $node->psql('from_old_dump', $old_dump, on_error_stop => 1, stderr => \$err,
	extra_params => ['--single-transaction']);
is($rc, 0, 'a dump of 1.0 restores into a fresh database, strictly') or diag($err);
is(extversion('from_old_dump'), '1.1', '... which installs 1.1');
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
