# pg_dump and pg_restore: counters travel with their database.
#
# A database with counters of every kind in two schemas (plain keyed, global,
# an expression key using a user-defined IMMUTABLE function, buffered
# counters with deltas not yet flushed, a partitioned source with a
# sub-partitioned partition, a default partition and a partition with
# another column order, a source with a dropped column so that attribute
# numbers change on restore, a renamed counted column, a counter in another
# schema than its source, a counter in public) is dumped and restored:
#
#   (a) pg_dump (plain SQL) of the whole database, psql -v ON_ERROR_STOP=1
#       --single-transaction, into a fresh database, into one where CREATE
#       EXTENSION counters ran first, into one made from a template1 that has
#       the extension, and into one that has counters of its own (one of
#       them in public, like a dumped one);
#   (b) pg_dump -Fc, pg_restore: exit status 0, nothing on stderr (and the
#       same with a directory-format dump restored with pg_restore -j 3),
#       also into a database that has the extension;
#   (c) pg_dump -s (the schema only, as for a logical replication
#       subscriber): the counters are registered again on the first write
#       to their source (c1) or on the first verify() (c2);
#   (d) pg_dump -t app.orders (only the source table) into a database with
#       the extension; the counters are declared again with create_counter.
#
# After each restore: every counter equals its defining query (EXCEPT ALL
# both ways: restored rows are not counted twice) and verify() is empty;
# counters.counters lists exactly the counters expected; every source and
# partition has the four triggers.  Then writes of every kind (insert,
# update, delete, partition writes, a partition created later, a detach, a
# truncate, a flush) keep them exact, a new counter can be declared, and
# dropping a counted column or the source is still refused, naming the
# counter.
use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "log_min_messages = warning\n");
$node->start;

my $dumpdir = PostgreSQL::Test::Utils::tempdir();

# ---------------------------------------------------------------------------
# The counters: name => defining query, as it reads after the renames below
# (the counter view keeps its column names; the queries are schema-qualified
# so that they read the same with any search_path).
# ---------------------------------------------------------------------------
my %app_counters = (
	'app.by_customer' =>
	  'SELECT customer AS cust, status, count(*) AS n, sum(amount) AS total FROM app.orders GROUP BY customer, status',
	'app.orders_total' =>
	  'SELECT count(*) AS n, sum(amount) AS total, count(status) AS with_status FROM app.orders',
	'app.by_bucket' =>
	  q{SELECT app.bucket(amount) AS b, count(*) AS n FROM app.orders WHERE status <> 'void' GROUP BY app.bucket(amount)},
	'app.status_buf' =>
	  'SELECT status, count(*) AS n, sum(amount) AS total FROM app.orders GROUP BY status',);
my %rep_counters = (
	'rep.events_by_kind' =>
	  'SELECT kind, count(*) AS n, sum(v) AS total FROM rep.events GROUP BY kind',
	'rep.events_total' => 'SELECT count(*) AS n, sum(v) AS total FROM rep.events',
	'rep.orders_by_status' =>
	  'SELECT status, count(*) AS n FROM app.orders GROUP BY status',
	'public.notes_by_tag' => 'SELECT tag, count(*) AS n FROM public.notes GROUP BY tag',);
my %all_counters = (%app_counters, %rep_counters);
# the counter a target database has of its own
my %own_counter = ('public.mine' => 'SELECT k, count(*) AS n FROM public.own GROUP BY k');

# ---------------------------------------------------------------------------
# The source database
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION counters;
CREATE SCHEMA app;
CREATE SCHEMA rep;
CREATE FUNCTION app.bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 / 10';

-- junk is dropped after the counters exist: the restored table has other
-- attribute numbers
CREATE TABLE app.orders (id int PRIMARY KEY, junk text, cust text, status text NOT NULL, amount int);
INSERT INTO app.orders
SELECT g, 'junk' || g, 'cust' || g % 7, (ARRAY['new', 'paid', 'sent', 'void'])[g % 4 + 1], nullif(g % 53, 0)
  FROM generate_series(1, 500) g;

-- a partitioned source: range partitions, one of them list-partitioned,
-- a default partition, and a partition attached with another column order
-- and a dropped column
CREATE TABLE rep.events (id int NOT NULL, day date NOT NULL, kind text, v int) PARTITION BY RANGE (day);
CREATE TABLE rep.events_2024 PARTITION OF rep.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE rep.events_2025 PARTITION OF rep.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
  PARTITION BY LIST (kind);
CREATE TABLE rep.events_2025_a PARTITION OF rep.events_2025 FOR VALUES IN ('a');
CREATE TABLE rep.events_2025_rest PARTITION OF rep.events_2025 DEFAULT;
CREATE TABLE rep.events_other PARTITION OF rep.events DEFAULT;
CREATE TABLE rep.events_2026 (gone int, v int, kind text, day date NOT NULL, id int NOT NULL);
ALTER TABLE rep.events_2026 DROP COLUMN gone;
ALTER TABLE rep.events ATTACH PARTITION rep.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO rep.events
SELECT g, '2023-12-01'::date + g * 3, (ARRAY['a', 'b', 'c'])[g % 3 + 1], g % 11
  FROM generate_series(1, 400) g;

SELECT counters.create_counter('app.by_customer',
  'SELECT cust, status, count(*) AS n, sum(amount) AS total FROM app.orders GROUP BY cust, status');
SELECT counters.create_counter('app.orders_total',
  'SELECT count(*) AS n, sum(amount) AS total, count(status) AS with_status FROM app.orders');
SELECT counters.create_counter('app.by_bucket',
  $$SELECT app.bucket(amount) AS b, count(*) AS n FROM app.orders WHERE status <> 'void' GROUP BY app.bucket(amount)$$);
SELECT counters.create_counter('app.status_buf',
  'SELECT status, count(*) AS n, sum(amount) AS total FROM app.orders GROUP BY status', 'buffered');
SELECT counters.create_counter('rep.events_by_kind',
  'SELECT kind, count(*) AS n, sum(v) AS total FROM rep.events GROUP BY kind');
SELECT counters.create_counter('rep.events_total', 'SELECT count(*) AS n, sum(v) AS total FROM rep.events', 'buffered');
SELECT counters.create_counter('rep.orders_by_status',
  'SELECT status, count(*) AS n FROM app.orders GROUP BY status');

-- schema changes after the counters were declared
ALTER TABLE app.orders DROP COLUMN junk;
ALTER TABLE app.orders RENAME COLUMN cust TO customer;

-- writes, so that the counters have been maintained, not only filled; the
-- buffered counters keep deltas not yet flushed
INSERT INTO app.orders SELECT g, 'cust' || g % 5, 'new', g % 17 FROM generate_series(501, 600) g;
UPDATE app.orders SET status = 'paid', amount = amount + 1 WHERE id % 9 = 0;
DELETE FROM app.orders WHERE id % 13 = 0;
INSERT INTO rep.events VALUES (1000, '2025-03-01', 'a', 5), (1001, '2026-02-01', 'b', 6), (1002, '2030-01-01', 'c', 7);
INSERT INTO rep.events_2026 (id, day, kind, v) VALUES (1003, '2026-03-01', 'z', 8);
UPDATE rep.events SET day = day + 365 WHERE id % 10 = 0;
DELETE FROM rep.events_2024 WHERE id % 7 = 0;

-- a counter in public, as the databases restored into have one of their own
CREATE TABLE public.notes (id int, tag text);
INSERT INTO public.notes SELECT g, 'tag' || g % 4 FROM generate_series(1, 50) g;
SELECT counters.create_counter('public.notes_by_tag', 'SELECT tag, count(*) AS n FROM public.notes GROUP BY tag');
});

# Every counter of %$counters equal to its query, verify() empty; exactly
# these counters registered (or, with opt also, these and those); every
# source and partition with its triggers (the four statement triggers, and
# the row trigger of replica mode on tables and leaf partitions).
sub check_db
{
	my ($db, $when, $counters, %opt) = @_;
	foreach my $c (sort keys %$counters)
	{
		my $q = $counters->{$c};
		# verify() registers a counter restored from a schema-only dump:
		# no_verify reads the counter without it
		my $verify =
		  $opt{no_verify} ? '0' : "(SELECT count(*) FROM counters.verify('$c'))";
		my $r = $node->safe_psql(
			$db, qq{
SELECT (SELECT count(*) FROM (SELECT * FROM $c EXCEPT ALL ($q)) d) || ' '
    || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $c) d) || ' '
    || $verify});
		is($r, '0 0 0', "$when: $c equals its query, verify() empty");
	}
	return if $opt{no_registry};
	my $registered = $node->safe_psql($db,
		q{SET search_path = ''; SELECT string_agg(counter::text, ',' ORDER BY counter::text) FROM counters.counters});
	is($registered, join(',', sort(keys %$counters, keys %{ $opt{also} // {} })),
		"$when: exactly the expected counters are registered");
	my $untriggered = $node->safe_psql(
		$db, q{
SET search_path = '';
SELECT coalesce(string_agg(t.relid::text, ',' ORDER BY t.relid::text), '')
  FROM (SELECT DISTINCT source FROM counters.counters) s, pg_partition_tree(s.source) t
 WHERE (SELECT count(*) FROM pg_trigger g
         WHERE g.tgrelid = t.relid AND g.tgname IN ('counters_insert', 'counters_update',
                                                     'counters_delete', 'counters_truncate',
                                                     'counters_replica'))
       <> CASE WHEN t.isleaf THEN 5 ELSE 4 END});
	is($untriggered, '', "$when: every source and partition has its triggers");
	return;
}

# Writes of every kind to app.orders
sub write_orders
{
	my ($db) = @_;
	$node->safe_psql(
		$db, q{
INSERT INTO app.orders SELECT g, 'cust' || g % 3, 'sent', g % 23 FROM generate_series(2001, 2100) g;
UPDATE app.orders SET customer = 'moved', amount = coalesce(amount, 0) * 2 WHERE id % 11 = 0;
UPDATE app.orders SET status = 'void' WHERE id % 17 = 1;
DELETE FROM app.orders WHERE id % 19 = 0;
BEGIN;
INSERT INTO app.orders VALUES (3000, 'tx', 'new', 1);
UPDATE app.orders SET amount = amount + 1 WHERE customer = 'cust1';
COMMIT;
BEGIN;
DELETE FROM app.orders;
ROLLBACK;
});
	return;
}

# Writes of every kind to rep.events, through the root and into partitions,
# and partition DDL
sub write_events
{
	my ($db) = @_;
	$node->safe_psql(
		$db, q{
INSERT INTO rep.events VALUES (5000, '2024-05-05', 'a', 1), (5001, '2025-05-05', 'a', 2),
                              (5002, '2025-05-06', 'q', 3), (5003, '2031-01-01', 'b', 4);
INSERT INTO rep.events_2025_a VALUES (5004, '2025-06-01', 'a', 5);
INSERT INTO rep.events_2026 (id, day, kind, v) VALUES (5005, '2026-06-01', 'c', 6);
UPDATE rep.events SET day = '2026-07-01', kind = 'moved' WHERE id % 9 = 0;
UPDATE rep.events_2025 SET kind = 'a' WHERE kind = 'q';
UPDATE rep.events_2026 SET v = v + 100;
DELETE FROM rep.events WHERE id % 8 = 0;
DELETE FROM rep.events_other WHERE id = 5003;
TRUNCATE rep.events_2025_rest;
CREATE TABLE rep.events_2040 PARTITION OF rep.events FOR VALUES FROM ('2040-01-01') TO ('2041-01-01');
INSERT INTO rep.events VALUES (5006, '2040-01-05', 'new', 7), (5007, '2040-01-06', 'new', 8);
CREATE TABLE rep.events_2041 (LIKE rep.events);
INSERT INTO rep.events_2041 VALUES (5008, '2041-01-01', 'att', 9), (5009, '2041-02-01', 'att', 10);
ALTER TABLE rep.events ATTACH PARTITION rep.events_2041 FOR VALUES FROM ('2041-01-01') TO ('2042-01-01');
ALTER TABLE rep.events DETACH PARTITION rep.events_2024;
INSERT INTO rep.events_2024 VALUES (5010, '2024-01-01', 'gone', 1);
});
	return;
}

# Dropping a counted column, or the source, is refused and names a counter.
sub check_refusals
{
	my ($db, $when, $column, $counter_name) = @_;
	my ($ret, $out, $err) = $node->psql($db, "ALTER TABLE app.orders DROP COLUMN $column");
	isnt($ret, 0, "$when: DROP COLUMN $column of a counted column is refused");
	like($err, qr/cannot drop column \Q$column\E.*\n.*\b\Q$counter_name\E\b/s,
		"$when: the error names the counter $counter_name");
	($ret, $out, $err) = $node->psql($db, 'DROP TABLE app.orders');
	isnt($ret, 0, "$when: DROP TABLE of the source is refused");
	like($err, qr/\b\Q$counter_name\E\b/, "$when: the error names the counter");
	return;
}

# A counter declared after the restore (the hidden relation numbers of the
# restored counters must not be handed out again)
sub check_new_counter
{
	my ($db, $when) = @_;
	my $q = 'SELECT customer, count(*) AS n FROM app.orders GROUP BY customer';
	my ($ret, $out, $err) = $node->psql($db,
		"SELECT counters.create_counter('app.after_restore', '$q')");
	is($ret, 0, "$when: a new counter can be declared after the restore")
	  or diag($err);
	$node->safe_psql($db, "INSERT INTO app.orders VALUES (9000, 'late', 'new', 3)");
	check_db($db, "$when, new counter", { 'app.after_restore' => $q }, no_registry => 1)
	  if $ret == 0;
	$node->psql($db, "SELECT counters.drop_counter('app.after_restore')");
	return;
}

# Run a command; returns (exit code, stdout, stderr)
sub run_cmd
{
	my @cmd = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# the source itself
check_db('src', 'source database', \%all_counters);
foreach my $deltas (split /\n/,
	$node->safe_psql('src', q{SELECT deltas FROM counters.counter_def WHERE mode = 'buffered' ORDER BY 1}))
{
	isnt($node->safe_psql('src', "SELECT count(*) FROM $deltas"),
		'0', "source database: deltas not yet flushed in $deltas");
}

# ---------------------------------------------------------------------------
# (a) plain dump of the whole database, restored with psql
# ---------------------------------------------------------------------------
my $src = $node->connstr('src');
my ($rc, $out, $err) = run_cmd('pg_dump', '-d', $src, '-f', "$dumpdir/all.sql");
is($rc, 0, 'pg_dump (plain) exits 0') or diag($err);
is($err, '', 'pg_dump (plain) prints nothing on stderr');

# targets: fresh; with the extension; from a template1 with the extension;
# with counters of its own, one of them in public
$node->safe_psql('postgres', 'CREATE DATABASE r_plain');
$node->safe_psql('postgres', 'CREATE DATABASE r_plain_ext');
$node->safe_psql('r_plain_ext', 'CREATE EXTENSION counters');
$node->safe_psql('template1', 'CREATE EXTENSION counters');
$node->safe_psql('postgres', 'CREATE DATABASE r_plain_tpl');
$node->safe_psql('template1', 'DROP EXTENSION counters');
$node->safe_psql('postgres', 'CREATE DATABASE r_plain_own');
$node->safe_psql(
	'r_plain_own', q{
CREATE EXTENSION counters;
CREATE TABLE public.own (k int);
INSERT INTO public.own SELECT g % 3 FROM generate_series(1, 20) g;
SELECT counters.create_counter('public.mine', 'SELECT k, count(*) AS n FROM public.own GROUP BY k');
CREATE SCHEMA mine;
CREATE TABLE mine.t (k int);
SELECT counters.create_counter('mine.t_n', 'SELECT count(*) AS n FROM mine.t', 'buffered');
});
foreach my $db ('r_plain', 'r_plain_ext', 'r_plain_tpl', 'r_plain_own')
{
	($rc, $out, $err) = run_cmd('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction',
		'-d', $node->connstr($db), '-f', "$dumpdir/all.sql");
	is($rc, 0, "(a) plain dump restores into $db with ON_ERROR_STOP, in one transaction") or diag($err);
	unlike($err, qr/ERROR|WARNING/, "(a) no error or warning while restoring into $db") or diag($err);
}

# ---------------------------------------------------------------------------
# (b) custom-format dump, pg_restore; directory format, parallel
# ---------------------------------------------------------------------------
($rc, $out, $err) = run_cmd('pg_dump', '-Fc', '-d', $src, '-f', "$dumpdir/all.dump");
is($rc, 0, 'pg_dump -Fc exits 0') or diag($err);
$node->safe_psql('postgres', 'CREATE DATABASE r_custom');
($rc, $out, $err) = run_cmd('pg_restore', '-d', $node->connstr('r_custom'), "$dumpdir/all.dump");
is($rc,  0,  '(b) pg_restore exits 0');
is($err, '', '(b) pg_restore prints no error or warning');
$node->safe_psql('postgres', 'CREATE DATABASE r_custom_ext');
$node->safe_psql('r_custom_ext', 'CREATE EXTENSION counters');
($rc, $out, $err) = run_cmd('pg_restore', '--exit-on-error', '-d', $node->connstr('r_custom_ext'),
	"$dumpdir/all.dump");
is($rc,  0,  '(b) pg_restore --exit-on-error into a database with the extension exits 0');
is($err, '', '(b) ... and prints no error or warning');

# ... and a directory-format dump restored with parallel jobs
($rc, $out, $err) = run_cmd('pg_dump', '-Fd', '-j', '3', '-d', $src, '-f', "$dumpdir/all.dir");
is($rc, 0, 'pg_dump -Fd -j 3 exits 0') or diag($err);
$node->safe_psql('postgres', 'CREATE DATABASE r_dir');
($rc, $out, $err) = run_cmd('pg_restore', '-j', '3', '-d', $node->connstr('r_dir'), "$dumpdir/all.dir");
is($rc,  0,  '(b) pg_restore -j 3 of a directory dump exits 0');
is($err, '', '(b) pg_restore -j 3 prints no error or warning');

my %restored = (
	r_plain => '(a) plain',
	r_plain_ext => '(a) plain, into a database with the extension',
	r_plain_tpl => '(a) plain, into a database from a template with the extension',
	r_plain_own => '(a) plain, into a database with counters of its own',
	r_custom => '(b) custom',
	r_custom_ext => '(b) custom, into a database with the extension',
	r_dir => '(b) directory, parallel');
foreach my $db (sort keys %restored)
{
	my $when = $restored{$db};
	my %also = $db eq 'r_plain_own' ? (%own_counter, 'mine.t_n' => 'SELECT count(*) AS n FROM mine.t') : ();
	check_db($db, "$when, restored", \%all_counters, also => \%also);
	check_db($db, "$when, its own counters", \%also, no_registry => 1) if %also;
	is( $node->safe_psql($db,
			q{SELECT string_agg(counter::text || '=' || mode, ',' ORDER BY counter::text) FROM counters.counters WHERE mode = 'buffered'}),
		$db eq 'r_plain_own'
		? 'app.status_buf=buffered,mine.t_n=buffered,rep.events_total=buffered'
		: 'app.status_buf=buffered,rep.events_total=buffered',
		"$when: the buffered counters are buffered");
	isnt($node->safe_psql($db, 'SELECT counters.flush()'),
		'0', "$when: the restored deltas are there to flush");
	check_db($db, "$when, after flush", \%all_counters, also => \%also);
	write_orders($db);
	write_events($db);
	check_db($db, "$when, after writes", \%all_counters, also => \%also);
	is($node->safe_psql($db, q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'rep.events_2024'::regclass
	                             AND tgname LIKE 'counters\_%'}),
		'0', "$when: the detached partition has no counters triggers");
	$node->safe_psql($db, 'SELECT counters.flush()');
	check_db($db, "$when, after writes and flush", \%all_counters, also => \%also);
	check_refusals($db, $when, 'amount', 'by_customer');
	check_refusals($db, $when, 'status', 'orders_by_status');
	my ($ret, $o, $e) = $node->psql($db, 'ALTER TABLE rep.events DROP COLUMN v');
	isnt($ret, 0, "$when: dropping a counted column of the partitioned source is refused");
	like($e, qr/events_by_kind/, "$when: the error names the counter");
	check_new_counter($db, $when);
	check_db($db, "$when, at the end", \%all_counters, also => \%also);
}

# ---------------------------------------------------------------------------
# (c) dump of the schema only (-s), as for a logical replication subscriber
# ---------------------------------------------------------------------------
($rc, $out, $err) = run_cmd('pg_dump', '-s', '-d', $src, '-f', "$dumpdir/schema.sql");
is($rc, 0, 'pg_dump -s exits 0') or diag($err);
($rc, $out, $err) = run_cmd('pg_dump', '-Fc', '-s', '-d', $src, '-f', "$dumpdir/schema.dump");
is($rc, 0, 'pg_dump -Fc -s exits 0') or diag($err);

foreach my $variant ('first write', 'first verify', 'pg_restore, first write')
{
	(my $db = "r_schema_$variant") =~ s/\W+/_/g;
	my $when = "(c) -s, $variant";
	$node->safe_psql('postgres', qq{CREATE DATABASE "$db"});
	if ($variant =~ /pg_restore/)
	{
		($rc, $out, $err) = run_cmd('pg_restore', '-d', $node->connstr($db), "$dumpdir/schema.dump");
		is($rc,  0,  "$when: pg_restore exits 0");
		is($err, '', "$when: pg_restore prints no error or warning");
	}
	else
	{
		($rc, $out, $err) = run_cmd('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db),
			'-f', "$dumpdir/schema.sql");
		is($rc, 0, "$when: restores with ON_ERROR_STOP") or diag($err);
		unlike($err, qr/ERROR|WARNING/, "$when: no error or warning while restoring") or diag($err);
	}
	# the counters read right even before they are registered again (the
	# tables are empty, and so are the counters)
	check_db($db, "$when, read before registration", \%app_counters, no_registry => 1, no_verify => 1)
	  if $variant eq 'first write';
	is($node->safe_psql($db, 'SELECT count(*) FROM counters.counter_def'), '0',
		"$when: no counter registered yet");
	if ($variant =~ /first write/)
	{
		$node->safe_psql($db, "INSERT INTO app.orders VALUES (4000, 'first', 'new', 4)");
	}
	else
	{
		foreach my $c (sort keys %app_counters)
		{
			is($node->safe_psql($db, "SELECT count(*) FROM counters.verify('$c')"),
				'0', "$when: verify('$c') is empty");
		}
	}
	# registered on first use: app.orders's (the write or the verify),
	# rep.events's when written, public.notes's when verified
	$node->safe_psql($db, "INSERT INTO rep.events VALUES (4000, '2024-02-02', 'a', 1)");
	$node->safe_psql($db, "SELECT count(*) FROM counters.verify('public.notes_by_tag')");
	check_db($db, "$when, registered", \%all_counters);
	write_orders($db);
	write_events($db);
	check_db($db, "$when, after writes", \%all_counters);
	$node->safe_psql($db, 'SELECT counters.flush()');
	check_db($db, "$when, after flush", \%all_counters);
	check_refusals($db, $when, 'amount', 'by_customer');
	check_new_counter($db, $when);
	check_db($db, "$when, at the end", \%all_counters);
}

# ---------------------------------------------------------------------------
# (d) dump of only the source table, counters declared again
# ---------------------------------------------------------------------------
($rc, $out, $err) = run_cmd('pg_dump', '-t', 'app.orders', '-d', $src, '-f', "$dumpdir/orders.sql");
is($rc, 0, 'pg_dump -t app.orders exits 0') or diag($err);
$node->safe_psql('postgres', 'CREATE DATABASE r_table');
$node->safe_psql(
	'r_table', q{
CREATE EXTENSION counters;
CREATE SCHEMA app;
CREATE FUNCTION app.bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 / 10';
});
($rc, $out, $err) = run_cmd('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('r_table'),
	'-f', "$dumpdir/orders.sql");
is($rc, 0, '(d) the table restores with ON_ERROR_STOP') or diag($err);
unlike($err, qr/ERROR|WARNING/, '(d) no error or warning while restoring') or diag($err);
# writes before any counter exists (the restored table may carry the
# counters triggers of the source database)
($rc, $out, $err) = run_cmd('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('r_table'),
	'-c', q{INSERT INTO app.orders VALUES (4001, 'before', 'new', 1); DELETE FROM app.orders WHERE id = 4001});
is($rc, 0, '(d) the restored table can be written before its counters are declared') or diag($err);
foreach my $c (sort keys %app_counters)
{
	my $q = $app_counters{$c};
	$q =~ s/'/''/g;
	my $mode = $c eq 'app.status_buf' ? 'buffered' : 'immediate';
	my ($ret, $o, $e) = $node->psql('r_table', "SELECT counters.create_counter('$c', '$q', '$mode')");
	is($ret, 0, "(d) $c declared again") or diag($e);
}
check_db('r_table', '(d) -t app.orders, declared again', \%app_counters);
write_orders('r_table');
check_db('r_table', '(d) -t app.orders, after writes', \%app_counters);
$node->safe_psql('r_table', 'SELECT counters.flush()');
check_db('r_table', '(d) -t app.orders, after flush', \%app_counters);
# rebuild() of a counter changes nothing once it is exact
is($node->safe_psql('r_table', q{SELECT sum(counters.rebuild(counter)) FROM counters.counters}),
	'0', '(d) rebuild() finds nothing to repair');
check_refusals('r_table', '(d)', 'amount', 'by_customer');

$node->stop;
done_testing();
