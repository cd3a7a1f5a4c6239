# Counters over Citus tables (issue 15): a coordinator and two workers (a third
# joins for the rebalance), TCP on 127.0.0.1, shared_preload_libraries =
# 'citus,counters', every scenario through the coordinator with concurrent
# writers (pgbench), every counter compared with its defining query after each
# step: EXCEPT ALL both ways, and verify().
#
#  1. counters over a hash-distributed table: keys with the distribution
#     column (storage distributed by it) and without (partial rows per
#     shard), immediate and buffered, a global one; every write path: router
#     and multi-shard INSERT/UPDATE/DELETE, COPY, INSERT ... SELECT pushed down
#     and through the coordinator, ON CONFLICT, writable CTE, transactions with
#     read-your-writes, ROLLBACK and savepoints, TRUNCATE.
#  2. concurrent writers, and the PREPARE hazard: distributed transactions
#     touching the same counter rows on two nodes in opposite orders never
#     hang (immediate-mode applies in Citus transaction blocks happen at
#     statement end, where Citus's deadlock detection sees every wait).
#  3. reads on the workers; verify and rebuild of counters corrupted on the
#     shards; flush() across nodes and the background worker of every node;
#     set_mode under writers.
#  4. cluster operations under writers: citus_move_shard_placement (logical
#     and blocking), a third worker and rebalance_table_shards, a shard split.
#  5. refusals with their SQLSTATE: distributing, undistributing or altering a
#     counted table, append-distributed sources, create_counter on a worker,
#     writes to counter storage, DROP VIEW of a counter, SET SCHEMA.
#  6. reference tables, Citus local tables and single-shard tables; writes and
#     TRUNCATE issued on a worker; a counter declared by a role that is not a
#     superuser.
#  7. drop_counter, DROP TABLE: nothing is left on any node.
#
# Skips, saying why, when Citus is not installed in the PostgreSQL under test
# (scripts/test builds it from ../shared/citus, see the README).
#
# Environment: COUNTERS_TAP_BASE_PORT (optional): the nodes use it to +3.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => "Citus is not installed in $pkglibdir (scripts/test builds it with ../shared/citus/build.sh)"
  unless -f "$pkglibdir/citus.so" && -f "$sharedir/extension/citus.control";

my $t0 = time;
my $base = $ENV{COUNTERS_TAP_BASE_PORT};

# One node: its own initdb, listening on 127.0.0.1 (Citus connects over TCP).
sub new_node
{
	my ($name, $i) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name, $base ? (port => $base + $i) : ());
	$node->init;
	$node->append_conf('postgresql.conf', qq{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'citus,counters'
max_prepared_transactions = 50
max_connections = 80
max_worker_processes = 24
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
fsync = off
synchronous_commit = off
counters.flush_interval = 0
citus.shard_count = 8
deadlock_timeout = '200ms'
citus.distributed_deadlock_detection_factor = 2
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus; CREATE EXTENSION counters;');
	return $node;
}

my $coord = new_node('coordinator', 0);
my @workers = (new_node('worker1', 1), new_node('worker2', 2));
$coord->safe_psql('postgres', "SELECT citus_set_coordinator_host('127.0.0.1', " . $coord->port . ")");
$coord->safe_psql('postgres', "SELECT citus_add_node('127.0.0.1', " . $_->port . ")") for @workers;
is($coord->safe_psql('postgres', 'SELECT count(*) FROM pg_dist_node WHERE hasmetadata AND metadatasynced'),
	'3', 'a coordinator and two workers with metadata');
note sprintf('cluster ready after %.1f s', time - $t0);

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# A function of the test database: per counter, how many rows the counter and
# its defining query differ by (EXCEPT ALL both ways) and how many keys
# verify() reports.  The defining query is the one counters.counters keeps.
$coord->safe_psql('postgres', q{
CREATE FUNCTION test_diff(OUT counter regclass, OUT diff bigint, OUT drift bigint)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
	c record;
BEGIN
	FOR c IN SELECT d.counter, d.query FROM counters.counters d ORDER BY d.counter::text LOOP
		counter := c.counter;
		EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL %s) UNION ALL (%s EXCEPT ALL SELECT * FROM %s)) x',
			c.counter, c.query, c.query, c.counter) INTO diff;
		SELECT count(*) INTO drift FROM counters.verify(c.counter);
		RETURN NEXT;
	END LOOP;
END $$;
});

# Every counter equals its query, and verify() finds nothing.
sub exact
{
	my ($what, $db) = @_;
	$db //= 'postgres';
	my $bad = $coord->safe_psql($db,
		q{SELECT string_agg(format('%s: %s rows differ, verify %s', counter, diff, drift), '; ')
		  FROM test_diff() WHERE diff <> 0 OR drift <> 0});
	my $n = $coord->safe_psql($db, 'SELECT count(*) FROM counters.counters');
	is($bad, '', "$what: all $n counters exact");
}

my $pgbdir = PostgreSQL::Test::Utils::tempdir;

# Write a pgbench script.
sub script
{
	my ($name, $body) = @_;
	my $file = "$pgbdir/$name.sql";
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh $body;
	close($fh);
	return ('-f', $file);
}

# Start pgbench against the coordinator (retrying deadlocks, which Citus may
# report for distributed transactions that lock rows in opposite orders).
sub pgbench_start
{
	my ($secs, $clients, @files) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-h', $coord->host, '-p', $coord->port,
			'-c', $clients, '-j', 2, '-T', $secs, '-P', 1, '--max-tries=1000', @files, 'postgres'
		],
		'>', \$out, '2>', \$err, IPC::Run::timeout($secs + 60));
	return { h => $h, out => \$out, err => \$err, secs => $secs };
}

# Wait for it; it must have finished in time (no hang), without failures.
sub pgbench_finish
{
	my ($run, $what) = @_;
	my $ok = eval { $run->{h}->finish; 1 };
	my ($out, $err) = (${ $run->{out} }, ${ $run->{err} });
	ok($ok && $run->{h}->result == 0, "$what: pgbench finished in time")
	  or diag("pgbench: " . ($@ || '') . "\n$out\n$err");
	my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $out =~ /number of failed transactions: (\d+)/;
	ok(($done // 0) > 0 && ($failed // 1) == 0, "$what: $done transactions, none failed")
	  or diag("$out\n$err");
	return $out;
}

sub pgbench_run
{
	my ($what, $secs, $clients, @files) = @_;
	return pgbench_finish(pgbench_start($secs, $clients, @files), $what);
}

# The SQLSTATE and message of a statement that must fail.
sub fails
{
	my ($node, $sql, $state, $pattern, $what, $db) = @_;
	my ($stdout, $stderr);
	$node->psql($db // 'postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$stdout, stderr => \$stderr, on_error_stop => 1);
	like($stderr, qr/ERROR:  $state: .*$pattern/s, "$what: refused with $state");
}

# ---------------------------------------------------------------------------
# 1. a hash-distributed table, every write path
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', q{
CREATE TABLE posts (id bigserial, tenant int NOT NULL, cat int, val int, published bool NOT NULL DEFAULT true,
                    PRIMARY KEY (tenant, id));
SELECT create_distributed_table('posts', 'tenant');
CREATE TABLE posts_in (tenant int NOT NULL, cat int, val int);
SELECT create_distributed_table('posts_in', 'tenant', colocate_with => 'posts');
CREATE TABLE local_in (tenant int, cat int, val int);
INSERT INTO posts (tenant, cat, val, published) SELECT g % 37, g % 5, g % 100, g % 4 <> 0 FROM generate_series(1, 3000) g;
INSERT INTO posts_in SELECT g % 37, g % 5, g FROM generate_series(1, 200) g;
INSERT INTO local_in SELECT g % 41, g % 7, g FROM generate_series(1, 200) g;
});
$coord->safe_psql('postgres', q{
SELECT counters.create_counter('tenant_cat', $$SELECT tenant, cat, count(*) AS posts, sum(val) AS val FROM posts WHERE published GROUP BY tenant, cat$$);
SELECT counters.create_counter('tenant_b', $$SELECT tenant, count(*) AS posts, sum(val) AS val FROM posts GROUP BY tenant$$, 'buffered');
SELECT counters.create_counter('cat_i', $$SELECT cat, count(*) AS posts, sum(val) AS val FROM posts WHERE published GROUP BY cat$$);
SELECT counters.create_counter('cat_b', $$SELECT cat, count(val) AS vals, sum(val) AS val FROM posts GROUP BY cat$$, 'buffered');
SELECT counters.create_counter('site_i', $$SELECT count(*) AS posts, sum(val) AS val FROM posts$$);
SELECT counters.create_counter('site_b', $$SELECT count(*) AS posts FROM posts WHERE published$$, 'buffered');
});
is($coord->safe_psql('postgres',
	q{SELECT string_agg(c.relname || ':' || p.partmethod::text || ':' || column_to_column_name(p.logicalrelid, p.partkey), ' ' ORDER BY c.relname)
	  FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
	  WHERE c.relname IN ('public.tenant_cat.data', 'public.cat_i.data', 'public.site_b.deltas')}),
	'public.cat_i.data:h:_counters_shard public.site_b.deltas:h:_counters_shard public.tenant_cat.data:h:tenant',
	'storage distributed by the key that is the distribution column, else by _counters_shard');
is($coord->safe_psql('postgres',
	q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text ~ '\.(data|deltas)"$'
	  AND colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'posts'::regclass)}),
	'12', 'every hidden table in the source\'s colocation group');
exact('first fill');

$coord->safe_psql('postgres', q{
INSERT INTO posts (tenant, cat, val) VALUES (1, 1, 10);
INSERT INTO posts (tenant, cat, val) VALUES (2, 2, 20), (3, 3, 30), (40, 4, NULL);
UPDATE posts SET cat = (cat + 1) % 5 WHERE val % 7 = 0;
UPDATE posts SET published = NOT published WHERE val % 11 = 0;
UPDATE posts SET val = val + 1 WHERE tenant = 5;
DELETE FROM posts WHERE val % 13 = 0;
DELETE FROM posts WHERE tenant = 6 AND cat = 1;
});
exact('router and multi-shard INSERT, UPDATE, DELETE');

$coord->safe_psql('postgres', qq{
COPY posts (tenant, cat, val) FROM STDIN;
@{[ join("\n", map { join("\t", $_ % 43, $_ % 5, $_) } 1 .. 300) ]}
\\.
});
exact('COPY');

$coord->safe_psql('postgres', q{
INSERT INTO posts (tenant, cat, val) SELECT tenant, cat, val FROM posts_in;
INSERT INTO posts (tenant, cat, val) SELECT cat, tenant, val FROM posts_in WHERE val < 50;
INSERT INTO posts (tenant, cat, val) SELECT tenant, cat, val FROM local_in;
INSERT INTO posts (tenant, cat, val) SELECT g, g % 5, g FROM generate_series(100, 140) g;
});
exact('INSERT ... SELECT: pushed down, repartitioned, through the coordinator');

$coord->safe_psql('postgres', q{
INSERT INTO posts (id, tenant, cat, val) SELECT id, tenant, cat, 1 FROM posts WHERE tenant = 7
  ON CONFLICT (tenant, id) DO UPDATE SET val = excluded.val + posts.val, cat = 4;
WITH moved AS (DELETE FROM posts WHERE tenant = 8 RETURNING cat, val)
  INSERT INTO posts (tenant, cat, val) SELECT 9, cat, val FROM moved;
});
exact('ON CONFLICT and a writable CTE');

# inside a transaction: the counters include its own writes, on every path
is($coord->safe_psql('postgres', q{
BEGIN;
INSERT INTO posts (tenant, cat, val) VALUES (11, 2, 5), (12, 2, 6);
UPDATE posts SET cat = 2 WHERE tenant = 13;
SELECT (SELECT count(*) FROM test_diff() WHERE diff <> 0);
COMMIT;
}), '0', 'read-your-writes inside a distributed transaction');
$coord->safe_psql('postgres', q{
BEGIN; INSERT INTO posts (tenant, cat, val) SELECT g % 9, 1, 1 FROM generate_series(1, 50) g; ROLLBACK;
BEGIN; INSERT INTO posts (tenant, cat, val) VALUES (14, 1, 1);
SAVEPOINT s; UPDATE posts SET cat = 3 WHERE tenant = 14; ROLLBACK TO SAVEPOINT s;
DELETE FROM posts WHERE tenant = 15; COMMIT;
});
exact('ROLLBACK and ROLLBACK TO SAVEPOINT');

# ---------------------------------------------------------------------------
# 2. concurrent writers, and the PREPARE hazard
# ---------------------------------------------------------------------------
my @writers = (
	script('insert', q{\set t random(1, 60)
\set c random(0, 4)
INSERT INTO posts (tenant, cat, val) VALUES (:t, :c, :t + :c);
}),
	script('move', q{\set t random(1, 60)
UPDATE posts SET cat = (cat + 1) % 5, published = NOT published WHERE tenant = :t AND val % 5 = 1;
}),
	script('multi', q{\set v random(0, 99)
UPDATE posts SET val = val + 1 WHERE val = :v;
}),
	script('txn', q{\set t1 random(1, 60)
\set t2 random(1, 60)
BEGIN;
INSERT INTO posts (tenant, cat, val) VALUES (:t1, 1, 1);
DELETE FROM posts WHERE tenant = :t2 AND val % 17 = 3;
INSERT INTO posts (tenant, cat, val) VALUES (:t2, 2, 2);
COMMIT;
}));
pgbench_run('mixed writers', 6, 6, @writers);
exact('after concurrent writers');

# Two tenants on two workers, in opposite orders, in one transaction: each
# transaction locks a counter row on one node and then wants the other's.
# Applied at PREPARE TRANSACTION, those waits would be on prepared
# transactions, seen by no deadlock detector: the cluster would hang, and
# pgbench with it (killed after its timeout: the test fails).  Applied at
# statement end, Citus cancels one transaction of each cycle, and pgbench
# retries it.
my ($ta, $tb) = split /\|/, $coord->safe_psql('postgres', q{
SELECT a.t, b.t FROM
  (SELECT t, nodeport FROM generate_series(1, 100) t JOIN pg_dist_shard_placement p
     ON p.shardid = get_shard_id_for_distribution_column('posts', t) ORDER BY t LIMIT 1) a,
  (SELECT t, nodeport FROM generate_series(1, 100) t JOIN pg_dist_shard_placement p
     ON p.shardid = get_shard_id_for_distribution_column('posts', t) ORDER BY t) b
WHERE a.nodeport <> b.nodeport LIMIT 1});
pgbench_run('tenants on two nodes in opposite orders', 5, 8,
	script('ab', "BEGIN;\nINSERT INTO posts (tenant, cat, val) VALUES ($ta, 1, 1);\nINSERT INTO posts (tenant, cat, val) VALUES ($tb, 1, 1);\nCOMMIT;\n"),
	script('ba', "BEGIN;\nINSERT INTO posts (tenant, cat, val) VALUES ($tb, 1, 1);\nINSERT INTO posts (tenant, cat, val) VALUES ($ta, 1, 1);\nCOMMIT;\n"));
is($coord->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts')
	  + $workers[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts')
	  + $workers[1]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'),
	0, 'no prepared transaction left behind');
exact('after the opposite-order workload');

# ---------------------------------------------------------------------------
# 3. reads on workers, verify, rebuild, flush, set_mode
# ---------------------------------------------------------------------------
for my $w (@workers)
{
	is($w->safe_psql('postgres', q{
SELECT (SELECT count(*) FROM ((SELECT * FROM tenant_cat EXCEPT ALL SELECT tenant, cat, count(*), sum(val) FROM posts WHERE published GROUP BY 1, 2)
        UNION ALL (SELECT tenant, cat, count(*), sum(val) FROM posts WHERE published GROUP BY 1, 2 EXCEPT ALL SELECT * FROM tenant_cat)) x)
     + (SELECT count(*) FROM ((SELECT * FROM cat_b EXCEPT ALL SELECT cat, count(val), sum(val) FROM posts GROUP BY 1)
        UNION ALL (SELECT cat, count(val), sum(val) FROM posts GROUP BY 1 EXCEPT ALL SELECT * FROM cat_b)) x)
     + (SELECT count(*) FROM ((SELECT * FROM site_i EXCEPT ALL SELECT count(*), sum(val) FROM posts)
        UNION ALL (SELECT count(*), sum(val) FROM posts EXCEPT ALL SELECT * FROM site_i)) x)}),
		'0', 'reads on worker ' . $w->name . ' equal the queries');
}

# corrupt the storage shards on the workers behind the guard's back
for my $w (@workers)
{
	$w->safe_psql('postgres', q{
SET session_replication_role = replica;
SET citus.show_shards_for_app_name_prefixes = '*';
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
           WHERE c.relname ~ '^public\.(tenant_cat|cat_i|site_i|tenant_b)\.data_[0-9]+$' LOOP
    EXECUTE format('UPDATE %s SET posts = posts + 1', r.t);
  END LOOP;
END $$;});
}
isnt($coord->safe_psql('postgres', 'SELECT count(*) FROM test_diff() WHERE drift > 0'), '0',
	'verify() sees counters changed on the shards');
$coord->safe_psql('postgres', q{
SELECT counters.rebuild(counter) FROM counters.counters ORDER BY counter::text;
});
exact('rebuild');

$coord->safe_psql('postgres', q{INSERT INTO posts (tenant, cat, val) SELECT g % 31, g % 5, g FROM generate_series(1, 200) g});
is($coord->safe_psql('postgres', q{SELECT counters.flush() > 0}), 't', 'flush() folds deltas');
is($coord->safe_psql('postgres', q{SELECT (SELECT count(*) FROM "public.cat_b.deltas") + (SELECT count(*) FROM "public.site_b.deltas")
       + (SELECT count(*) FROM "public.tenant_b.deltas")}), '0', 'flush() leaves no delta on any node');
exact('flush');

# the background worker of each node folds the deltas it holds
$_->safe_psql('postgres', q{ALTER SYSTEM SET counters.flush_interval = '200ms'; SELECT pg_reload_conf();})
  for ($coord, @workers);
pgbench_run('writers with flush workers', 3, 4, @writers[0 .. 1]);
my $left;
for (1 .. 50)
{
	$left = $coord->safe_psql('postgres', q{SELECT (SELECT count(*) FROM "public.cat_b.deltas") + (SELECT count(*) FROM "public.site_b.deltas")
	       + (SELECT count(*) FROM "public.tenant_b.deltas")});
	last if $left == 0;
	sleep 0.2;
}
is($left, '0', 'the flush workers of the workers fold every delta');
exact('after the flush workers');

my $run = pgbench_start(6, 4, @writers);
sleep 1;
$coord->safe_psql('postgres', q{SELECT counters.set_mode('cat_b', 'immediate'); SELECT counters.set_mode('cat_i', 'buffered');});
sleep 1;
$coord->safe_psql('postgres', q{SELECT counters.set_mode('cat_b', 'buffered'); SELECT counters.set_mode('site_i', 'buffered');});
pgbench_finish($run, 'writers during set_mode');
is($coord->safe_psql('postgres', q{SELECT string_agg(counter || '=' || mode, ' ' ORDER BY counter::text) FROM counters.counters WHERE counter::text IN ('cat_b', 'cat_i', 'site_i')}),
	'cat_b=buffered cat_i=buffered site_i=buffered', 'modes switched');
exact('set_mode under writers');

$coord->safe_psql('postgres', q{
BEGIN; INSERT INTO posts (tenant, cat, val) VALUES (1, 1, 1); TRUNCATE posts; INSERT INTO posts (tenant, cat, val) VALUES (2, 2, 2); COMMIT;
});
is($coord->safe_psql('postgres', 'SELECT posts FROM site_i'), '1', 'TRUNCATE empties the counters');
exact('TRUNCATE');
$coord->safe_psql('postgres', q{INSERT INTO posts (tenant, cat, val, published) SELECT g % 53, g % 5, g % 100, g % 3 <> 0 FROM generate_series(1, 2000) g;});
exact('refilled');

# ---------------------------------------------------------------------------
# 4. cluster operations under writers
# ---------------------------------------------------------------------------
my $shard = $coord->safe_psql('postgres',
	q{SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'posts'::regclass ORDER BY shardid LIMIT 1});
my $from = $coord->safe_psql('postgres', "SELECT nodeport FROM pg_dist_shard_placement WHERE shardid = $shard");
my ($to) = grep { $_ != $from } map { $_->port } @workers;
$run = pgbench_start(8, 4, @writers);
sleep 1;
$coord->safe_psql('postgres',
	"SELECT citus_move_shard_placement($shard, '127.0.0.1', $from, '127.0.0.1', $to, shard_transfer_mode => 'force_logical')");
# Moving back needs the leftovers of the first move dropped first; Citus's
# cleanup skips them while a backend still has them open (a flush worker may
# have folded that copy a moment before): retry, as an operator would.
my ($rc, $moved_err);
for (1 .. 20)
{
	($rc, undef, $moved_err) = $coord->psql('postgres',
		"SELECT citus_move_shard_placement($shard, '127.0.0.1', $to, '127.0.0.1', $from, shard_transfer_mode => 'block_writes')");
	last if $rc == 0 || $moved_err !~ /could not be cleaned up/;
	sleep 0.5;
}
is($rc, 0, 'the shard moved back, blocking') or diag($moved_err);
pgbench_finish($run, 'writers during two shard moves');
is($coord->safe_psql('postgres', qq{SELECT count(DISTINCT nodeport) FROM pg_dist_shard_placement p JOIN pg_dist_shard s USING (shardid)
  WHERE s.shardminvalue = (SELECT shardminvalue FROM pg_dist_shard WHERE shardid = $shard)}), '1',
	'the counters\' shards moved with their source\'s');
exact('citus_move_shard_placement, logical and blocking');

my $worker3 = new_node('worker3', 3);
$coord->safe_psql('postgres', "SELECT citus_add_node('127.0.0.1', " . $worker3->port . ")");
$run = pgbench_start(25, 4, @writers);
sleep 1;
$coord->safe_psql('postgres', q{SELECT rebalance_table_shards(shard_transfer_mode => 'force_logical')});
pgbench_finish($run, 'writers during the rebalance');
isnt($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_shard_placement WHERE nodeport = } . $worker3->port), '0',
	'the rebalance moved shards to the new worker');
exact('a third worker and rebalance_table_shards');
is($worker3->safe_psql('postgres', q{SELECT (SELECT count(*) FROM ((SELECT * FROM site_b EXCEPT ALL SELECT count(*) FROM posts WHERE published)
   UNION ALL (SELECT count(*) FROM posts WHERE published EXCEPT ALL SELECT * FROM site_b)) x)}), '0',
	'reads on the new worker');
# a shard split (blocking: Citus's non-blocking splits hang under concurrent
# UPDATEs, citusdata/citus#6790); partial rows keep counting right after it
my ($split, $mid) = split /\|/, $coord->safe_psql('postgres', q{
SELECT shardid, ((shardminvalue::bigint + shardmaxvalue::bigint) / 2)::int FROM pg_dist_shard
 WHERE logicalrelid = 'posts'::regclass ORDER BY shardid LIMIT 1});
$run = pgbench_start(6, 2, @writers[0 .. 1]);
$coord->safe_psql('postgres', qq{
SELECT citus_split_shard_by_split_points($split, ARRAY['$mid'],
  ARRAY(SELECT nodeid FROM pg_dist_node WHERE noderole = 'primary' AND shouldhaveshards ORDER BY nodeid LIMIT 2),
  shard_transfer_mode => 'block_writes')});
pgbench_finish($run, 'writers during a shard split');
$coord->safe_psql('postgres', q{UPDATE posts SET cat = (cat + 1) % 5 WHERE val % 6 = 0; DELETE FROM posts WHERE val % 23 = 0;});
exact('a shard split');
note sprintf('cluster operations done after %.1f s', time - $t0);

# ---------------------------------------------------------------------------
# 5. refusals
# ---------------------------------------------------------------------------
fails($coord, q{SELECT undistribute_table('posts')}, '0A000',
	qr/undistribute_table\(\) cannot change table "posts": counters count its rows: .*public.cat_b/, 'undistribute_table');
fails($coord, q{SELECT alter_distributed_table('posts', shard_count => 4, cascade_to_colocated => true)}, '0A000',
	qr/alter_distributed_table\(\) cannot change table "posts"/, 'alter_distributed_table');
fails($coord, q{SELECT alter_distributed_table('posts_in', shard_count => 4, cascade_to_colocated => true)}, '0A000',
	qr/alter_distributed_table\(\) cannot change table "posts_in": it is co-located with public.posts/, 'altering a co-located table');
fails($coord, q{SELECT create_reference_table('"public.cat_b.data"')}, '42809',
	qr/is part of counter public.cat_b/, 'a hidden table');
$coord->safe_psql('postgres', q{
CREATE TABLE later (k int NOT NULL, v int);
INSERT INTO later SELECT g % 5, g FROM generate_series(1, 20) g;
SELECT counters.create_counter('later_k', $$SELECT k, count(*) FROM later GROUP BY k$$);
});
fails($coord, q{SELECT create_distributed_table('later', 'k')}, '0A000',
	qr/create_distributed_table\(\) cannot change table "later": counters count its rows: public.later_k(?s:.*)HINT:  Drop its counters/,
	'distributing a table that has counters');
$coord->safe_psql('postgres', q{
CREATE TABLE events (k int, v int);
SELECT create_distributed_table('events', 'k', 'append');
CREATE TABLE docs (id int NOT NULL, created date NOT NULL, v int);
SELECT create_distributed_table('docs', 'created');
});
fails($coord, q{SELECT counters.create_counter('ev', $$SELECT k, count(*) FROM events GROUP BY k$$)}, '0A000',
	qr/an append or range distributed table/, 'an append-distributed source');
fails($coord, q{SELECT counters.create_counter('docs_v', $$SELECT v, count(*) FROM docs GROUP BY v$$)}, '0A000',
	qr/must have its distribution column "created" among its keys/, 'partial rows over a date distribution column');
fails($workers[0], q{SELECT counters.create_counter('w', $$SELECT cat, count(*) FROM posts GROUP BY cat$$)}, '0A000',
	qr/are declared on the coordinator/, 'create_counter on a worker');
fails($coord, q{UPDATE "public.tenant_cat.data" SET posts = 0}, '42809',
	qr/cannot write to counter storage table/, 'a write to counter storage');
fails($coord, q{DROP VIEW cat_i}, '0A000',
	qr/is dropped with counters.drop_counter\(\)/, 'DROP VIEW of a counter');
fails($coord, q{CREATE SCHEMA other; ALTER VIEW cat_i SET SCHEMA other}, '0A000',
	qr/cannot move counter public.cat_i over Citus table public.posts/, 'ALTER VIEW ... SET SCHEMA');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM counters.counters WHERE counter::text IN ('ev', 'docs_v', 'w')}),
	'0', 'refused counters leave nothing');
exact('after the refusals');

# ---------------------------------------------------------------------------
# 6. reference tables, Citus local tables, a role that is not a superuser
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', q{
CREATE TABLE cats (id int PRIMARY KEY, grp int, w int);
SELECT create_reference_table('cats');
INSERT INTO cats SELECT g, g % 4, g FROM generate_series(1, 100) g;
SELECT counters.create_counter('cat_groups', $$SELECT grp, count(*) AS n, sum(w) AS w FROM cats GROUP BY grp$$);
SELECT counters.create_counter('cat_total', $$SELECT count(*) AS n FROM cats$$, 'buffered');
CREATE TABLE notes (id int PRIMARY KEY, k int, v int);
SELECT citus_add_local_table_to_metadata('notes');
INSERT INTO notes SELECT g, g % 3, g FROM generate_series(1, 50) g;
SELECT counters.create_counter('note_k', $$SELECT k, count(*) AS n, sum(v) AS v FROM notes GROUP BY k$$);
CREATE ROLE app LOGIN;
GRANT CREATE ON SCHEMA public TO app;
SET ROLE app;
CREATE TABLE shop_orders (id bigserial, shop int NOT NULL, status text, amount numeric, PRIMARY KEY (shop, id));
SELECT create_distributed_table('shop_orders', 'shop', colocate_with => 'none');
INSERT INTO shop_orders (shop, status, amount) SELECT g % 13, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END, g / 10.0 FROM generate_series(1, 300) g;
SELECT counters.create_counter('shop_status', $$SELECT shop, status, count(*) AS n, sum(amount) AS amount FROM shop_orders GROUP BY shop, status$$);
SELECT counters.create_counter('status_amount', $$SELECT status, count(*) AS n, sum(amount) AS amount FROM shop_orders GROUP BY status$$, 'buffered');
RESET ROLE;
GRANT SELECT ON shop_status, status_amount TO PUBLIC;
});
exact('reference, local and a role\'s counters declared');
$run = pgbench_start(5, 4,
	script('ref', q{\set i random(1, 200)
INSERT INTO cats VALUES (:i, :i % 5, 1) ON CONFLICT (id) DO UPDATE SET grp = (cats.grp + 1) % 5, w = cats.w + 1;
}),
	script('local', q{\set i random(1, 200)
INSERT INTO notes VALUES (:i, :i % 4, 1) ON CONFLICT (id) DO UPDATE SET k = (notes.k + 1) % 4;
}),
	script('app', q{\set s random(0, 20)
BEGIN;
SET LOCAL ROLE app;
INSERT INTO shop_orders (shop, status, amount) VALUES (:s, 'open', :s / 3.0);
UPDATE shop_orders SET status = 'paid' WHERE shop = :s AND status = 'open' AND id % 4 = 0;
COMMIT;
}));
pgbench_finish($run, 'writers of reference, local and the role\'s tables');
$coord->safe_psql('postgres', q{
UPDATE cats SET grp = 9 WHERE id < 10; DELETE FROM cats WHERE id > 190;
SELECT counters.set_mode('cat_total', 'immediate'); SELECT counters.set_mode('cat_groups', 'buffered');
INSERT INTO cats VALUES (300, 3, 3);
SELECT counters.rebuild('cat_total'); SELECT counters.flush('cat_groups');
DELETE FROM notes WHERE id % 7 = 0;
TRUNCATE notes; INSERT INTO notes VALUES (1, 1, 1);
SET ROLE app;
INSERT INTO shop_orders (shop, status, amount) VALUES (1, 'paid', 'NaN');
SELECT counters.flush('status_amount');
SELECT counters.set_mode('status_amount', 'immediate');
});
exact('reference table, Citus local table, the role\'s counters');
# a single-shard table; writes and TRUNCATE issued on a worker (Citus's metadata is on every node)
$coord->safe_psql('postgres', q{
CREATE TABLE solo (k int, v int);
SELECT create_distributed_table('solo', NULL);
INSERT INTO solo SELECT g % 6, g FROM generate_series(1, 60) g;
SELECT counters.create_counter('solo_k', $$SELECT k, count(*) AS n, sum(v) AS v FROM solo GROUP BY k$$);
SELECT counters.create_counter('solo_b', $$SELECT count(*) AS n FROM solo WHERE v > 10$$, 'buffered');
});
$workers[0]->safe_psql('postgres', q{
INSERT INTO solo VALUES (1, 100), (7, 7);
UPDATE solo SET k = k + 1 WHERE v % 5 = 0;
INSERT INTO cats VALUES (500, 1, 1);
INSERT INTO posts (tenant, cat, val) SELECT g % 17, g % 5, g FROM generate_series(1, 100) g;
UPDATE posts SET cat = (cat + 2) % 5 WHERE val % 9 = 0;
BEGIN; DELETE FROM posts WHERE tenant = 3; INSERT INTO posts (tenant, cat, val) VALUES (3, 3, 3); COMMIT;
});
exact('a single-shard table, and writes issued on a worker');
$workers[1]->safe_psql('postgres', q{TRUNCATE solo; INSERT INTO solo VALUES (2, 20);});
is($coord->safe_psql('postgres', q{SELECT n FROM solo_b}), '1', 'TRUNCATE issued on a worker empties the counters');
exact('TRUNCATE issued on a worker');

for my $w (@workers)
{
	is($w->safe_psql('postgres', q{SELECT (SELECT count(*) FROM ((SELECT * FROM cat_groups EXCEPT ALL SELECT grp, count(*), sum(w) FROM cats GROUP BY grp)
       UNION ALL (SELECT grp, count(*), sum(w) FROM cats GROUP BY grp EXCEPT ALL SELECT * FROM cat_groups)) x)}),
		'0', 'reference counter read on ' . $w->name);
}

# ---------------------------------------------------------------------------
# 7. dropping
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', q{
SELECT counters.drop_counter('cat_i');
SELECT counters.drop_counter('status_amount');
DROP TABLE notes CASCADE;
});
exact('after drop_counter');
$coord->safe_psql('postgres', q{DROP TABLE posts CASCADE; DROP TABLE cats CASCADE; DROP TABLE shop_orders CASCADE; DROP TABLE later CASCADE; DROP TABLE solo CASCADE});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM counters.counters}), '0', 'no counter left');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text ~ '\.(data|deltas)$'}),
	'0', 'no hidden Citus table left in the metadata');
for my $w (@workers, $worker3)
{
	is($w->safe_psql('postgres', q{SET citus.show_shards_for_app_name_prefixes = '*';
SELECT count(*) FROM pg_class WHERE relname ~ '\.(data|deltas|query)(_[0-9]+)?$' OR relname IN ('tenant_cat', 'site_b', 'cat_groups')}),
		'0', 'nothing left on ' . $w->name);
}

$_->stop('fast') for ($worker3, reverse(@workers), $coord);
note sprintf('total: %.1f s', time - $t0);
done_testing();
