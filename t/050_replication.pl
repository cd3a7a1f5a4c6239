# Counters on replicas: a publisher, a logical subscriber and a physical
# hot standby of the publisher.  Each side of a logical replication keeps
# its own counters, from the source rows it has: the subscriber counts the
# rows replication brings (its counters' row trigger fires where
# session_replication_role is replica), and nothing of a counter's own
# relations travels (their changes are kept out of logical decoding, rows
# that arrive anyway are dropped).
#
#  1. "postgres": publication FOR TABLE posts, pposts (partitioned, published
#     via the root); subscription with streaming = on.  The subscriber
#     declares the same counters itself.  Initial sync, concurrent writers
#     (pgbench) with flush workers on both nodes, a streamed bulk UPDATE,
#     rows moving between partitions, TRUNCATE, local writes on the
#     subscriber; every counter on every node equals its defining query.
#  2. "tp": two_phase = on: PREPARE / COMMIT PREPARED / ROLLBACK PREPARED.
#  3. "fa": publication FOR ALL TABLES, subscriber schema from pg_dump -s,
#     a two-phase subscription (its CREATE SUBSCRIPTION registers the
#     restored counters); create_counter / set_mode / drop_counter on the
#     publisher while it replicates; the subscription never stops, no
#     counter drifts.
#  4. the standby reads exactly; writing API functions fail with 25006 and
#     no internal SQL; after promotion the worker folds and the API works.
#  5. cut-over: DROP SUBSCRIPTION, writes move to the subscriber, no rebuild.
#
# Environment: COUNTERS_TAP_BASE_PORT (optional): the nodes use it, +1, +2.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $base = $ENV{COUNTERS_TAP_BASE_PORT};
my %port_of = $base ? (pub => $base, sub => $base + 1, standby => $base + 2) : ();
sub new_node
{
	my ($name) = @_;
	return PostgreSQL::Test::Cluster->new($name,
		$port_of{$name} ? (port => $port_of{$name}) : ());
}

my $conf = q{
shared_preload_libraries = 'counters'
counters.flush_interval = '100ms'
max_prepared_transactions = 10
logical_decoding_work_mem = '64kB'
max_worker_processes = 16
max_logical_replication_workers = 8
max_sync_workers_per_subscription = 4
};

# ---------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------
my $pub = new_node('pub');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf', $conf);
$pub->start;

$pub->backup('bk');
my $standby = new_node('standby');
$standby->init_from_backup($pub, 'bk', has_streaming => 1);
# Without a cluster_name the standby's walreceiver shows up in
# pg_stat_replication as 'walreceiver', and wait_for_catchup('<subscription>')
# (which also matches 'walreceiver') would then see two rows and time out.
$standby->append_conf('postgresql.conf', "cluster_name = 'standby'\nhot_standby_feedback = on\n");
$standby->start;

my $sub = new_node('sub');
$sub->init;
$sub->append_conf('postgresql.conf', $conf);
$sub->start;

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# Every counter of a database compared with its defining query, both ways
# (EXCEPT ALL), and with verify().  Returns a list of "counter: n rows differ"
# for the inexact ones, and the number of counters checked.  Works on a hot
# standby (no temporary objects).
sub inexact_counters
{
	my ($node, $db) = @_;
	my @bad;
	my @defs = split /\n/, $node->safe_psql($db,
		q{SELECT counter::text || E'\t' || pg_catalog.replace(query, E'\n', ' ')
		    FROM counters.counters ORDER BY 1});
	for my $line (@defs)
	{
		my ($c, $q) = split /\t/, $line, 2;
		$q =~ s/;\s*$//;    # adopted counters carry pg_get_viewdef()'s text
		my $n = $node->safe_psql($db,
			"SELECT (SELECT count(*) FROM ((SELECT * FROM $c EXCEPT ALL ($q))"
			  . " UNION ALL (($q) EXCEPT ALL SELECT * FROM $c)) d)"
			  . " + (SELECT count(*) FROM counters.verify('$c'))");
		push @bad, "$c: $n rows differ" if $n ne '0';
	}
	return (\@bad, scalar @defs);
}

sub all_exact
{
	my ($node, $db, $expected_counters, $what) = @_;
	my ($bad, $n) = inexact_counters($node, $db);
	is($n, $expected_counters, "$what: $expected_counters counters on " . $node->name);
	is(join('; ', @$bad), '', "$what: every counter on " . $node->name . " equals its query");
}

# the subscription is running and has applied everything the publisher wrote
sub caught_up
{
	my ($subname, $db) = @_;
	$pub->wait_for_catchup($subname);
	ok( $sub->poll_query_until($db,
			"SELECT pid IS NOT NULL FROM pg_stat_subscription WHERE subname = '$subname'"),
		"subscription $subname is running");
}

my $schema = q{
CREATE EXTENSION counters;
CREATE TABLE posts (id bigint PRIMARY KEY, blog_id int, user_id int, is_published bool, rating int);
CREATE TABLE pposts (id bigint, blog_id int, rating numeric, PRIMARY KEY (id, blog_id)) PARTITION BY RANGE (blog_id);
CREATE TABLE pposts_lo PARTITION OF pposts FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE pposts_hi PARTITION OF pposts FOR VALUES FROM (50) TO (MAXVALUE);
SELECT counters.create_counter('c_imm', $$SELECT blog_id, count(*) AS n, sum(rating) AS r FROM posts WHERE is_published GROUP BY blog_id$$);
SELECT counters.create_counter('c_buf', $$SELECT user_id, count(*) AS n, sum(rating) AS r FROM posts GROUP BY user_id$$, 'buffered');
SELECT counters.create_counter('c_glob', $$SELECT count(*) AS n, sum(rating) AS r FROM posts$$, 'buffered');
SELECT counters.create_counter('c_part', $$SELECT blog_id, count(*) AS n, sum(rating) AS r FROM pposts GROUP BY blog_id$$);
};
my $fill = q{
INSERT INTO posts SELECT g, g % 10, g % 7, g % 3 <> 0, g % 5 FROM generate_series(1, 2000) g;
INSERT INTO pposts SELECT g, g % 100, g % 9 FROM generate_series(1, 2000) g;
};
my $connstr = $pub->connstr;

# ---------------------------------------------------------------------------
# 1. FOR TABLE publication, streaming = on, counters declared on both sides
# ---------------------------------------------------------------------------
$pub->safe_psql('postgres', $schema . $fill);
$sub->safe_psql('postgres', $schema);
$pub->safe_psql('postgres',
	'CREATE PUBLICATION p FOR TABLE posts, pposts WITH (publish_via_partition_root = true)');
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION s CONNECTION '$connstr dbname=postgres' PUBLICATION p WITH (streaming = on)");
$sub->wait_for_subscription_sync($pub, 's');
all_exact($sub, 'postgres', 4, 'initial table sync');

# concurrent writers on the publisher (single-statement transactions: no
# deadlocks between them), local writers on the subscriber's own rows
my $w = q{
\set id random(1, 3000)
\set b random(0, 120)
INSERT INTO posts VALUES (:id, :b % 10, :b % 7, :b % 2 = 0, :b) ON CONFLICT (id) DO UPDATE SET rating = posts.rating + 1, blog_id = (posts.blog_id + 1) % 10, is_published = NOT posts.is_published;
UPDATE posts SET user_id = (user_id + 1) % 7 WHERE id = :id + 7;
DELETE FROM posts WHERE id = :id + 1;
UPDATE pposts SET blog_id = :b WHERE id = :id;
};
my $wl = q{
\set id random(1000000, 1003000)
\set b random(0, 120)
INSERT INTO posts VALUES (:id, :b % 10, :b % 7, true, :b) ON CONFLICT (id) DO UPDATE SET rating = posts.rating + 1;
DELETE FROM posts WHERE id = :id + 1;
};
$pub->pgbench('--no-vacuum --client=4 --jobs=2 --time=5', 0,
	[qr{processed: \d+}], [qr{^$}], 'writers on the publisher', { 'w.sql' => $w });
$sub->pgbench('--no-vacuum --client=2 --jobs=1 --time=2', 0,
	[qr{processed: \d+}], [qr{^$}], 'local writers on the subscriber', { 'wl.sql' => $wl });

# a counter declared on the subscriber while it replicates (the apply
# worker's cached counters of posts are invalidated)
$sub->safe_psql('postgres', q{SELECT counters.create_counter('c_late',
	$$SELECT user_id, count(*) AS n FROM posts WHERE rating > 2 GROUP BY user_id$$, 'buffered')});

# a bulk UPDATE bigger than logical_decoding_work_mem is streamed; rows
# move between keys and between partitions
$pub->safe_psql('postgres', 'UPDATE posts SET blog_id = (blog_id + 3) % 10, rating = rating * 2');
$pub->safe_psql('postgres', 'UPDATE pposts SET blog_id = blog_id + 1000');
caught_up('s', 'postgres');
cmp_ok($pub->safe_psql('postgres', "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 's'"),
	'>', 0, 'some transactions were streamed');
all_exact($pub, 'postgres', 4, 'writers');
all_exact($sub, 'postgres', 5, 'writers, streaming, local writes, a counter declared meanwhile');
$sub->safe_psql('postgres', q{SELECT counters.drop_counter('c_late')});

$pub->safe_psql('postgres', 'TRUNCATE posts');
$pub->safe_psql('postgres', 'TRUNCATE pposts');
caught_up('s', 'postgres');
all_exact($sub, 'postgres', 4, 'replicated TRUNCATE');
$pub->safe_psql('postgres', $fill);
caught_up('s', 'postgres');
all_exact($sub, 'postgres', 4, 'rows after TRUNCATE');

# ---------------------------------------------------------------------------
# 2. two_phase = on (its own database: one subscription per table set)
# ---------------------------------------------------------------------------
# The apply worker prepares what the publisher prepared and applies the
# transactions committed meanwhile before COMMIT PREPARED arrives.  An
# immediate-mode counter row changed by a prepared transaction would stay
# locked against them, and the worker would wait for itself: there the
# worker records immediate counters' deltas, which their views read since
# CREATE SUBSCRIPTION (or set_mode).  First, as after an upgrade from 1.1,
# counters whose views predate the subscription (the event trigger off
# while it is made, and the flush worker too): the apply worker changes
# their rows and warns, naming set_mode.  Then the flush worker gives them
# reading views, and prepared transactions overlap on keys of every
# counter with committed ones between them.  The publisher's
# counters are buffered here: on the publisher, a prepared transaction
# keeps an immediate counter's rows locked as it keeps any row.
my $reads_deltas = q{SELECT EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
   JOIN counters.counter_def c ON c.counter = r.ev_class AND d.refobjid = c.deltas
  WHERE c.counter = '%s'::regclass)};
$pub->safe_psql('postgres', 'CREATE DATABASE tp');
$sub->safe_psql('postgres', 'CREATE DATABASE tp');
$pub->safe_psql('tp', $schema . $fill . 'CREATE PUBLICATION p FOR TABLE posts, pposts');
$pub->safe_psql('tp', q{SELECT counters.set_mode('c_imm', 'buffered'), counters.set_mode('c_part', 'buffered')});
# the subscriber's flush worker off meanwhile: it would give the counters
# their reading views at its next round
$sub->safe_psql('postgres', 'ALTER SYSTEM SET counters.flush_interval = 0');
$sub->reload;
sleep(1);    # let the launcher see the new interval
$sub->safe_psql('tp', $schema . 'ALTER EVENT TRIGGER counters_ddl_end DISABLE');
$sub->safe_psql('tp',
	"CREATE SUBSCRIPTION s2 CONNECTION '$connstr dbname=tp' PUBLICATION p WITH (two_phase = on, streaming = on)");
$sub->safe_psql('tp', 'ALTER EVENT TRIGGER counters_ddl_end ENABLE');
$sub->wait_for_subscription_sync($pub, 's2', 'tp');
ok($sub->poll_query_until('tp', "SELECT subtwophasestate = 'e' FROM pg_subscription WHERE subname = 's2'"),
	'two_phase enabled');
is($sub->safe_psql('tp', sprintf($reads_deltas, 'c_imm')), 'f', 'a counter older than the subscription reads no deltas');
$pub->safe_psql('tp', q{
BEGIN; UPDATE posts SET rating = rating + 1 WHERE id % 10 = 1; PREPARE TRANSACTION 'old';
COMMIT PREPARED 'old';
});
caught_up('s2', 'tp');
my $warning = qr/WARNING:  counter public\.c_imm changes its rows in a two-phase subscription's transactions/;
ok($sub->wait_for_log($warning), 'the apply worker warns about such a counter');
ok($sub->log_contains(qr/HINT:  Run SELECT counters\.set_mode\('public\.c_imm', 'immediate'\)/), '... naming set_mode');
all_exact($sub, 'tp', 4, 'counter rows changed by a prepared transaction');

# the flush worker gives them views that read their deltas (as
# set_mode(c, 'immediate') would), once their tables are free
$sub->safe_psql('postgres', 'ALTER SYSTEM RESET counters.flush_interval');
$sub->reload;
ok($sub->poll_query_until('tp', sprintf($reads_deltas, 'c_imm') . ' AND ' . sprintf($reads_deltas, 'c_part') =~ s/^SELECT//r),
	'the flush worker gives the immediate counters views that read their deltas');
is($sub->safe_psql('tp', q{SELECT string_agg(mode, ',' ORDER BY counter::text) FROM counters.counter_def}),
	'buffered,buffered,immediate,immediate', '... and stay immediate');
my $log_offset = -s $sub->logfile;
my $recorded_before = $sub->safe_psql('tp', q{SELECT records FROM counters.stats WHERE counter = 'c_imm'::regclass});
$pub->safe_psql('tp', q{
BEGIN; INSERT INTO posts SELECT g, g % 10, g % 7, true, 1 FROM generate_series(5001, 8000) g;
       INSERT INTO pposts SELECT g, g % 100, 1 FROM generate_series(5001, 6000) g;
       PREPARE TRANSACTION 'big';
INSERT INTO posts SELECT g, g % 10, g % 7, true, 2 FROM generate_series(8001, 8100) g;
UPDATE posts SET blog_id = 3 WHERE id % 10 = 2 AND id < 5000;
INSERT INTO pposts SELECT g, g % 100, 2 FROM generate_series(6001, 6100) g;
BEGIN; DELETE FROM posts WHERE blog_id = 4 AND id < 500; INSERT INTO pposts VALUES (7000, 1, 5);
       PREPARE TRANSACTION 'gone';
UPDATE posts SET rating = rating + 1 WHERE blog_id IN (1, 3, 4) AND id >= 500 AND id < 5000;
DELETE FROM pposts WHERE blog_id = 1 AND id < 1000;
});
caught_up('s2', 'tp');
is($sub->safe_psql('tp', 'SELECT count(*) FROM pg_prepared_xacts'), '2', 'prepared on the subscriber');
all_exact($sub, 'tp', 4, 'prepared transactions pending, committed ones after them');
cmp_ok($sub->safe_psql('tp', q{SELECT records FROM counters.stats WHERE counter = 'c_imm'::regclass}), '>',
	$recorded_before, 'the apply worker recorded the deltas of the immediate counter');
$pub->safe_psql('tp', "COMMIT PREPARED 'big'");
$pub->safe_psql('tp', "ROLLBACK PREPARED 'gone'");
caught_up('s2', 'tp');
is($sub->safe_psql('tp', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'prepared transactions finished');
all_exact($sub, 'tp', 4, 'COMMIT PREPARED / ROLLBACK PREPARED');
ok($sub->poll_query_until('tp', 'SELECT count(*) = 0 FROM counters."public.c_imm.deltas"'),
	'the flush worker folds the recorded deltas of the immediate counter');
all_exact($sub, 'tp', 4, 'after the fold');
ok(!$sub->log_contains($warning, $log_offset), 'no warning once the counters read their deltas');

# concurrent writers on the publisher, some of whose transactions are
# prepared and then committed by COMMIT PREPARED, the others committed at
# once: on the subscriber, prepared and committed transactions over the
# same keys interleave in the apply worker
my $tpw = q{
\set id random(1, 3000)
\set b random(0, 120)
BEGIN;
INSERT INTO posts VALUES (:id, :b % 10, :b % 7, :b % 2 = 0, :b) ON CONFLICT (id) DO UPDATE SET rating = posts.rating + 1, blog_id = (posts.blog_id + 1) % 10, is_published = NOT posts.is_published;
UPDATE pposts SET blog_id = :b WHERE id = :id;
PREPARE TRANSACTION 'w-:client_id-:id-:b';
COMMIT PREPARED 'w-:client_id-:id-:b';
};
$pub->pgbench('--no-vacuum --client=4 --jobs=2 --time=5', 0,
	[qr{processed: \d+}], [qr{^$}], 'prepared and committed writers on the publisher',
	{ 'tpw.sql' => $tpw, 'w2.sql' => $w });
caught_up('s2', 'tp');
is($sub->safe_psql('tp', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'no prepared transaction left');
all_exact($pub, 'tp', 4, 'prepared and committed writers: publisher');
all_exact($sub, 'tp', 4, 'prepared and committed writers: subscriber');

# cut-over: without the subscription the flush worker gives the immediate
# counters their plain views back, and they stay exact
$sub->safe_psql('tp', 'DROP SUBSCRIPTION s2');
ok($sub->poll_query_until('tp', 'SELECT NOT (' . sprintf($reads_deltas, 'c_imm') . ') AND NOT ('
		  . sprintf($reads_deltas, 'c_part') . ')'),
	'after DROP SUBSCRIPTION the flush worker gives the immediate counters plain views');
$sub->safe_psql('tp', 'UPDATE posts SET blog_id = (blog_id + 1) % 10 WHERE id % 3 = 0; DELETE FROM pposts WHERE id % 5 = 0');
all_exact($sub, 'tp', 4, 'two-phase subscriber after cut-over');
is($sub->safe_psql('tp', q{SELECT string_agg(mode, ',' ORDER BY counter::text) FROM counters.counter_def}),
	'buffered,buffered,immediate,immediate', '... in their modes');

# ---------------------------------------------------------------------------
# 3. FOR ALL TABLES, subscriber schema from pg_dump -s, counter DDL on the
#    publisher while it replicates
# ---------------------------------------------------------------------------
$pub->safe_psql('postgres', 'CREATE DATABASE fa');
$sub->safe_psql('postgres', 'CREATE DATABASE fa');
$pub->safe_psql('fa', $schema . $fill . 'CREATE PUBLICATION pall FOR ALL TABLES');
my ($dump, $dump_err) = run_command([ 'pg_dump', '-s', '-d', $pub->connstr('fa') ]);
is($dump_err, '', 'pg_dump -s of the publisher');
$sub->safe_psql('fa', $dump);
$sub->safe_psql('fa',
	"CREATE SUBSCRIPTION sall CONNECTION '$connstr dbname=fa' PUBLICATION pall WITH (streaming = on, two_phase = on)");
# the counters pg_dump -s brought were registered by CREATE SUBSCRIPTION,
# and the immediate ones given views that read their deltas
is($sub->safe_psql('fa', q{SELECT string_agg(counter::text || ':' || mode, ',' ORDER BY counter::text)
   FROM counters.counter_def}), 'c_buf:buffered,c_glob:buffered,c_imm:immediate,c_part:immediate',
	'FOR ALL TABLES, two-phase: the restored counters are registered at CREATE SUBSCRIPTION');
is($sub->safe_psql('fa', sprintf($reads_deltas, 'c_imm') . ', ' . sprintf($reads_deltas, 'c_part') =~ s/^SELECT//r),
	't|t', '... and their immediate ones read their deltas');
$sub->wait_for_subscription_sync($pub, 'sall', 'fa');
all_exact($sub, 'fa', 4, 'FOR ALL TABLES: initial sync');
$pub->safe_psql('fa', q{
SELECT counters.create_counter('c_new', $$SELECT is_published, count(*) AS n FROM posts GROUP BY is_published$$);
UPDATE posts SET is_published = NOT is_published WHERE id % 4 = 0;
});
$pub->safe_psql('fa', q{SELECT counters.set_mode('c_imm', 'buffered')});
$pub->safe_psql('fa', 'UPDATE posts SET rating = rating + 1 WHERE id % 5 = 0');
$pub->safe_psql('fa', q{SELECT counters.drop_counter('c_buf')});
$pub->safe_psql('fa', 'DELETE FROM posts WHERE id % 7 = 0');
caught_up('sall', 'fa');
is($sub->safe_psql('fa', 'SELECT count(*) FROM posts'), $pub->safe_psql('fa', 'SELECT count(*) FROM posts'),
	'FOR ALL TABLES: the source is replicated');
all_exact($pub, 'fa', 4, 'FOR ALL TABLES: publisher');
all_exact($sub, 'fa', 4, 'FOR ALL TABLES: subscriber keeps its own counters');
ok(!$sub->log_contains(qr/ERROR:.*(logical replication target relation|counters\.)/),
	'no apply error about counters relations');

# ---------------------------------------------------------------------------
# 4. hot standby, then promotion
# ---------------------------------------------------------------------------
$pub->safe_psql('postgres', 'ALTER SYSTEM SET counters.flush_interval = 0');
$pub->reload;
sleep(1);    # let the worker see the new interval
$pub->safe_psql('postgres', 'INSERT INTO posts SELECT g, g % 10, g % 7, true, 1 FROM generate_series(10001, 10500) g');
$pub->wait_for_catchup($standby);
cmp_ok($standby->safe_psql('postgres', 'SELECT count(*) FROM counters."public.c_glob.deltas"'), '>', 0,
	'unfolded deltas on the standby');
all_exact($standby, 'postgres', 4, 'standby reads');
for my $call ("counters.flush()", "counters.rebuild('c_imm')", "counters.set_mode('c_imm', 'buffered')",
	"counters.create_counter('c_x', \$\$SELECT count(*) FROM posts\$\$)", "counters.drop_counter('c_glob')")
{
	my ($rc, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\nSELECT $call");
	like($err, qr/ERROR:  25006: counters cannot be changed during recovery/, "$call on the standby: 25006");
	unlike($err, qr/SQL statement|CONTEXT/, "$call on the standby: no internal SQL");
}
$standby->promote;
ok($standby->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'counters flush launcher'"),
	'the flush launcher runs after promotion');
ok($standby->poll_query_until('postgres', 'SELECT count(*) = 0 FROM counters."public.c_glob.deltas"'),
	'the worker folds the deltas after promotion');
$standby->safe_psql('postgres', "SELECT counters.rebuild('c_imm'), counters.set_mode('c_imm', 'buffered')");
$standby->safe_psql('postgres', 'INSERT INTO posts VALUES (99999999, 1, 1, true, 5)');
all_exact($standby, 'postgres', 4, 'promoted standby');

# ---------------------------------------------------------------------------
# 5. cut-over: no rebuild needed
# ---------------------------------------------------------------------------
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION s');
$sub->safe_psql('postgres', q{
UPDATE posts SET blog_id = (blog_id + 1) % 10 WHERE id % 3 = 0;
INSERT INTO pposts SELECT g, g % 100, 1 FROM generate_series(50001, 50100) g;
DELETE FROM posts WHERE id % 11 = 0;
});
all_exact($sub, 'postgres', 4, 'after cut-over');

$standby->stop('fast');
$sub->stop('fast');
$pub->stop('fast');
done_testing();
