# The background worker of buffered mode, and crashes in buffered mode.
#
# With counters in shared_preload_libraries and counters.flush_interval at
# 100ms:
#  1. the launcher ("counters flush launcher" in pg_stat_activity) runs;
#  2. the deltas of a buffered counter are folded by the worker on its own
#     (nobody calls flush()), and the counter stays exact;
#  3. counters.flush_interval = 0 (ALTER SYSTEM + pg_reload_conf(), no
#     restart) stops the folding: deltas stay, reads stay exact; back to
#     100ms, the folding resumes;
#  4. a second database with the extension is flushed too, and a database
#     without it is left alone; after folding many deltas (12000 dead rows
#     in a deltas table), the worker vacuums that deltas table itself
#     (pg_stat_user_tables.vacuum_count, not autovacuum_count);
#  5. DROP DATABASE of a database with the extension succeeds while the
#     worker runs, also while a worker is folding that very database (a
#     fold of two million deltas), and the worker goes on flushing the others;
#  6. with pgbench writers on buffered counters and the worker folding, the
#     postmaster is killed with SIGKILL: after restart every counter equals
#     its query, verify() is empty, and the worker folds what is left;
#  7. a crash between recording deltas and folding them (flush_interval 0,
#     committed writes, SIGKILL): the deltas survive, the counters are exact,
#     and flush() folds them; the buffered counters of an UNLOGGED source
#     are emptied with it (its global counter reads count 0) and count again;
#  8. the node stops cleanly (fast), with no crashed process in its log.
#
# COUNTERS_TAP_PORT, if set, is the port of the node (else a free one).
use strict;
use warnings;

use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use lib $FindBin::RealBin;
use CountersTAP qw(server_pids wait_gone);

my %port = $ENV{COUNTERS_TAP_PORT} ? (port => $ENV{COUNTERS_TAP_PORT}) : ();
my $node = PostgreSQL::Test::Cluster->new('worker', %port);
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'counters'
counters.flush_interval = '100ms'
max_connections = 40
max_worker_processes = 16
# a crash must find work to redo: no checkpoint during the test
checkpoint_timeout = '1h'
max_wal_size = '4GB'
});
$node->start;

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# The schema of a test database: a source with four buffered counters (a
# multi-column key with sums, a global counter, a date_trunc expression key,
# and a hot two-group key), a check function and a count of pending deltas.
my $schema = q{
CREATE EXTENSION counters;
CREATE TABLE ev (
    id bigserial PRIMARY KEY,
    tenant int NOT NULL,
    region text,
    amount bigint,
    price numeric(12,2),
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL
);
INSERT INTO ev (tenant, region, amount, price, deleted, created_at)
SELECT 1 + g % 20, NULLIF('r' || g % 5, 'r0'), CASE WHEN g % 9 = 0 THEN NULL ELSE g END,
       (g % 1000) / 100.0, g % 7 = 0, timestamp '2026-01-01' + make_interval(hours => g % 500)
  FROM generate_series(1, 2000) g;
SELECT counters.create_counter('c_tenant_region',
  $$SELECT tenant, region, count(*) AS n, sum(amount) AS amount, sum(price) AS price FROM ev WHERE NOT deleted GROUP BY tenant, region$$,
  'buffered');
SELECT counters.create_counter('c_total',
  $$SELECT count(*) AS n, sum(amount) AS amount, count(region) AS with_region FROM ev$$, 'buffered');
SELECT counters.create_counter('c_day',
  $$SELECT date_trunc('day', created_at) AS day, count(*) AS n, sum(price) AS price FROM ev WHERE NOT deleted GROUP BY 1$$,
  'buffered');
SELECT counters.create_counter('c_deleted',
  $$SELECT deleted, count(*) AS n FROM ev GROUP BY deleted$$, 'buffered');
-- one row per counter that differs from its query (EXCEPT ALL both ways)
-- or that verify() reports; empty when every counter is exact
CREATE FUNCTION drifted() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
    missing bigint;
    extra bigint;
    reported bigint;
BEGIN
    FOR r IN SELECT c.counter, c.query FROM counters.counters c ORDER BY c.counter::text LOOP
        EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL SELECT * FROM %s) x', r.query, r.counter)
           INTO missing;
        EXECUTE format('SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL (%s)) x', r.counter, r.query)
           INTO extra;
        SELECT count(*) INTO reported FROM counters.verify(r.counter);
        IF missing <> 0 OR extra <> 0 OR reported <> 0 THEN
            RETURN NEXT format('%s: %s missing, %s extra, verify() %s', r.counter, missing, extra, reported);
        END IF;
    END LOOP;
END
$f$;
-- recorded deltas not yet folded, over every counter of the database (or
-- of one source)
CREATE FUNCTION pending(src regclass DEFAULT NULL) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
    d regclass;
    n bigint;
    total bigint := 0;
BEGIN
    FOR d IN SELECT deltas FROM counters.counter_def WHERE src IS NULL OR source = src LOOP
        EXECUTE format('SELECT count(*) FROM %s', d) INTO n;
        total := total + n;
    END LOOP;
    RETURN total;
END
$f$;
};

# a few committed transactions that move every counter
my $writes = q{
INSERT INTO ev (tenant, region, amount, price, created_at)
SELECT 1 + g % 20, 'r' || g % 3, g, g / 10.0, timestamp '2026-02-01' + make_interval(hours => g)
  FROM generate_series(1, 50) g;
UPDATE ev SET tenant = tenant % 20 + 1, deleted = NOT deleted WHERE id % 37 = 0;
DELETE FROM ev WHERE id % 53 = 0;
};

sub make_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, $schema);
	return;
}

sub write_some
{
	my ($db) = @_;
	# separate transactions, so several delta rows per key
	$node->safe_psql($db, $_) foreach grep { /\S/ } split /;\n/, $writes;
	return;
}

# every counter of $db equals its query, verify() empty
sub exact_ok
{
	my ($db, $what) = @_;
	my $drift = $node->safe_psql($db, 'SELECT * FROM drifted()');
	is($drift, '', "$db: every counter equals its query, verify() empty ($what)");
	return;
}

sub pending
{
	my ($db) = @_;
	return $node->safe_psql($db, 'SELECT pending()');
}

# wait until the worker has folded every delta of $db, without calling flush()
sub folded_by_worker_ok
{
	my ($db, $what) = @_;
	ok($node->poll_query_until($db, 'SELECT pending() = 0'),
		"$db: the worker folded every delta ($what)");
	return;
}

sub set_interval
{
	my ($value) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET counters.flush_interval = '$value'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	# new sessions see the new value once the postmaster has reloaded; the
	# launcher reloads when the SIGHUP wakes it
	$node->poll_query_until('postgres', 'SHOW counters.flush_interval', $value)
	  or die "counters.flush_interval did not become $value";
	return;
}

my $launcher_sql = q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'counters flush launcher'};

# ---------------------------------------------------------------------------
# 1, 2: the launcher runs; the worker folds on its own
# ---------------------------------------------------------------------------
ok($node->poll_query_until('postgres', $launcher_sql),
	'the launcher runs (backend_type "counters flush launcher")');
is($node->safe_psql('postgres', 'SHOW counters.flush_interval'),
	'100ms', 'counters.flush_interval is 100ms');

make_db('app1');
exact_ok('app1', 'after create');
write_some('app1');
exact_ok('app1', 'right after the writes');
folded_by_worker_ok('app1', 'first writes');
exact_ok('app1', 'after the worker folded');
# the worker folded into the storage: a read of the counter, now from its
# storage alone, is exact
is( $node->safe_psql(
		'app1', q{SELECT (SELECT n FROM c_deleted WHERE deleted) = count(*) FROM ev WHERE deleted}),
	't', 'app1: c_deleted reads its exact value');

# ---------------------------------------------------------------------------
# 3: flush_interval = 0 stops the folding, 100ms resumes it
# ---------------------------------------------------------------------------
set_interval('0');
sleep 1;    # a round that began before the reload ends
write_some('app1');
my $before = pending('app1');
ok($before > 0, "app1: deltas recorded with the worker off ($before)");
sleep 2;    # twenty intervals of 100ms
is(pending('app1'), $before, 'app1: no delta folded with counters.flush_interval = 0');
is($node->safe_psql('postgres', $launcher_sql), 't', 'the launcher still runs');
exact_ok('app1', 'with the worker off, deltas pending');

set_interval('100ms');
folded_by_worker_ok('app1', 'after counters.flush_interval went back to 100ms');
exact_ok('app1', 'after the worker resumed');

# ---------------------------------------------------------------------------
# 4: a second database with the extension, one without it
# ---------------------------------------------------------------------------
make_db('app2');
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->safe_psql('plain', 'CREATE TABLE t (x int); INSERT INTO t VALUES (1)');
write_some('app2');
write_some('app1');
folded_by_worker_ok('app2', 'second database');
folded_by_worker_ok('app1', 'alongside the second database');
exact_ok('app2', 'after the worker folded');
is($node->safe_psql('plain', q{SELECT count(*) FROM pg_extension WHERE extname = 'counters'}),
	'0', 'the database without the extension still has none');

# the worker vacuums a deltas table that folding filled with dead rows
$node->safe_psql(
	'app1', q{
CREATE TABLE vac_src (k int);
SELECT counters.create_counter('vac_c', 'SELECT k, count(*) AS n FROM vac_src GROUP BY k', 'buffered');
});
my $vacuums = q{SELECT coalesce(max(vacuum_count), 0) FROM pg_stat_user_tables
	WHERE relid = (SELECT deltas FROM counters.counter_def WHERE counter = 'vac_c'::regclass)};
is($node->safe_psql('app1', $vacuums), '0', 'app1: a new deltas table, never vacuumed');
# one transaction over 12000 keys records 12000 delta rows; folding them
# leaves 12000 dead rows
$node->safe_psql('app1', 'INSERT INTO vac_src SELECT g FROM generate_series(1, 12000) g');
folded_by_worker_ok('app1', '12000 keys in one transaction');
ok($node->poll_query_until('app1', "SELECT ($vacuums) > 0"),
	'app1: the worker vacuumed the deltas table that folding filled with dead rows');
$node->safe_psql('app1', 'UPDATE vac_src SET k = k + 1 WHERE k % 7 = 0');
folded_by_worker_ok('app1', 'after the vacuum');
exact_ok('app1', 'after the worker vacuumed a deltas table');

# ---------------------------------------------------------------------------
# 5: DROP DATABASE while the worker runs
# ---------------------------------------------------------------------------
# a few databases with pending deltas, dropped as soon as they are written
# (the worker visits every database every 100ms)
foreach my $i (1 .. 5)
{
	make_db("dropme$i");
	write_some("dropme$i");
	my ($ret, $out, $err) = $node->psql('postgres', "DROP DATABASE dropme$i");
	is($ret, 0, "DROP DATABASE dropme$i with deltas pending, worker running")
	  or diag($err);
}

# a database whose fold takes a while: the DROP comes while a worker is
# connected to it, folding two million deltas (which takes longer than the
# 5 s DROP DATABASE waits for other sessions to leave, unless the machine is
# very fast)
$node->safe_psql('postgres', 'CREATE DATABASE bigdrop');
$node->safe_psql('bigdrop', q{
	CREATE EXTENSION counters;
	CREATE TABLE big (id int);
	SELECT counters.create_counter('c_id', 'SELECT id, count(*) AS n FROM big GROUP BY id', 'buffered');
});
$node->safe_psql('bigdrop',
	'INSERT INTO big SELECT g FROM generate_series(1, 2000000) g');
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
		WHERE backend_type = 'counters flush worker' AND datname = 'bigdrop' AND state = 'active'}),
	'a flush worker is folding in bigdrop');
my $t0 = time;
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE bigdrop');
my $took = sprintf('%.1f', time - $t0);
is($ret, 0, "DROP DATABASE while the worker folds in it succeeds (took ${took}s)")
  or diag($err);
unlike($err, qr/being accessed by other users/,
	'no "being accessed by other users" error');
$node->psql('postgres', 'DROP DATABASE IF EXISTS bigdrop WITH (FORCE)')
  if $ret != 0;

# the worker goes on flushing the others
ok($node->poll_query_until('postgres', $launcher_sql),
	'the launcher runs after the drops');
write_some('app1');
write_some('app2');
folded_by_worker_ok('app1', 'after the drops');
folded_by_worker_ok('app2', 'after the drops');
exact_ok('app1', 'after the drops');
exact_ok('app2', 'after the drops');

# ---------------------------------------------------------------------------
# 6: kill -9 of the postmaster with writers running and the worker folding
# ---------------------------------------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir;
my %scripts = (
	'ins.sql' => q{
\set tenant random(1, 20)
\set reg random(0, 4)
\set amt random(-50, 1000)
\set day random(0, 13)
INSERT INTO ev (tenant, region, amount, price, created_at)
VALUES (:tenant, NULLIF('r' || :reg, 'r0'), CASE WHEN :amt < 0 THEN NULL ELSE :amt END,
        :amt / 100.0, timestamp '2026-01-01' + make_interval(days => :day, secs => :amt + 50));
},
	'hot.sql' => q{
INSERT INTO ev (tenant, region, amount, price, created_at)
VALUES (1, 'r1', 1, 0.01, timestamp '2026-01-01');
},
	'move.sql' => q{
SELECT last_value AS maxid FROM ev_id_seq \gset
\set id random(1, :maxid)
\set tenant random(1, 20)
UPDATE ev SET tenant = :tenant, deleted = NOT deleted, amount = coalesce(amount, 0) + 1,
              created_at = created_at + interval '1 hour'
 WHERE id = :id;
},
	'del.sql' => q{
SELECT last_value AS maxid FROM ev_id_seq \gset
\set id random(1, :maxid)
DELETE FROM ev WHERE id = :id;
},
	'bulk.sql' => q{
\set n random(2, 40)
\set t random(1, 20)
BEGIN;
INSERT INTO ev (tenant, region, amount, price, created_at)
SELECT :t, 'r2', g, g / 10.0, timestamp '2026-01-05' + make_interval(hours => g) FROM generate_series(1, :n) g;
SELECT n FROM c_total;
UPDATE ev SET deleted = true WHERE id IN (SELECT id FROM ev WHERE tenant = :t ORDER BY id DESC LIMIT 3);
COMMIT;
},
	'rollback.sql' => q{
\set t random(1, 20)
BEGIN;
INSERT INTO ev (tenant, region, amount, price, created_at)
SELECT :t, 'r3', g, g, timestamp '2026-01-09' FROM generate_series(1, 20) g;
SELECT n FROM c_tenant_region WHERE tenant = :t AND region = 'r3';
ROLLBACK;
});
my @files;
foreach my $name (sort keys %scripts)
{
	my $weight = $name eq 'hot.sql' ? 6 : $name eq 'ins.sql' ? 6 : 2;
	PostgreSQL::Test::Utils::append_to_file("$dir/$name", $scripts{$name});
	push @files, '-f', "$dir/$name\@$weight";
}

sub start_writers
{
	my ($db, $seconds, $out, $err) = @_;
	my @cmd = (
		$node->installed_command('pgbench'),
		'-n', '-c', 8, '-j', 2, '-T', $seconds,
		'--random-seed', 20261122,
		'-h', $node->host, '-p', $node->port, @files, $db);
	return IPC::Run::start(\@cmd, '>', $out, '2>', $err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

my ($wout, $werr) = ('', '');
my $rows_before = $node->safe_psql('app1', 'SELECT count(*) FROM ev');
my $writers = start_writers('app1', 600, \$wout, \$werr);
ok( $node->poll_query_until(
		'app1', "SELECT count(*) > $rows_before + 2000 FROM ev"),
	'writers are committing');
sleep 1;
my $folding = $node->safe_psql('app1', 'SELECT pending()');
note("deltas pending in app1 just before the kill: $folding");
my @pids = server_pids($node);
$node->kill9;
ok(wait_gone(@pids), 'every server process of the killed postmaster exited');
eval { $writers->finish; };
note('writers after the kill: ' . (split /\n/, $werr)[-1]) if $werr;

$node->start;
ok($node->poll_query_until('postgres', $launcher_sql),
	'the launcher runs again after the crash');
exact_ok('app1', 'after kill -9 with writers and the worker running');
exact_ok('app2', 'after kill -9');
folded_by_worker_ok('app1', 'after the crash');
exact_ok('app1', 'after the worker folded what the crash left');

# writers again after recovery, then the worker catches up
($wout, $werr) = ('', '');
$writers = start_writers('app1', 5, \$wout, \$werr);
ok($writers->finish, 'writers run cleanly after recovery') or diag($werr);
unlike($werr, qr/ERROR|aborted/, 'no error in the writers after recovery');
exact_ok('app1', 'after writing again, deltas pending');
folded_by_worker_ok('app1', 'after writing again');
exact_ok('app1', 'after writing again and folding');

# ---------------------------------------------------------------------------
# 7: a crash between recording deltas and folding them
# ---------------------------------------------------------------------------
set_interval('0');
sleep 1;
is(pending('app1'), '0', 'app1: nothing pending before the writes');
# an unlogged source: crash recovery empties it, its storage and its deltas
# (all unlogged), and its global counter still reads one row (count 0)
$node->safe_psql('app1', q{
	CREATE UNLOGGED TABLE ul (k int, v int);
	SELECT counters.create_counter('ul_k', 'SELECT k, count(*) AS n, sum(v) AS s FROM ul GROUP BY k', 'buffered');
	SELECT counters.create_counter('ul_total', 'SELECT count(*) AS n, sum(v) AS s FROM ul', 'buffered');
	INSERT INTO ul SELECT g % 5, g FROM generate_series(1, 100) g;
});
$node->safe_psql('app1', 'SELECT counters.flush()');
$node->safe_psql('app1', 'INSERT INTO ul SELECT g % 7, g FROM generate_series(1, 50) g');
write_some('app1');
write_some('app2');
my $recorded1 = pending('app1');
my $ul_pending = $node->safe_psql('app1', q{SELECT pending('ul')});
ok($ul_pending > 0, "deltas of the unlogged source pending ($ul_pending)");
my $recorded2 = pending('app2');
ok($recorded1 > 0 && $recorded2 > 0,
	"deltas recorded and committed, not folded (app1 $recorded1, app2 $recorded2)");
@pids = server_pids($node);
$node->kill9;
ok(wait_gone(@pids), 'every server process of the killed postmaster exited');
$node->start;
is($node->safe_psql('postgres', 'SHOW counters.flush_interval'),
	'0', 'counters.flush_interval is still 0 after the restart');
is($node->safe_psql('app1', 'SELECT count(*) FROM ul'), '0', 'the unlogged source is empty after the crash');
is($node->safe_psql('app1', 'SELECT n, s IS NULL FROM ul_total'), '0|t', 'its global counter reads count 0, sum NULL');
is($node->safe_psql('app1', 'SELECT count(*) FROM ul_k'), '0', 'its keyed counter is empty');
is($node->safe_psql('app1', q{SELECT pending('ul')}), '0', 'the deltas of the unlogged source are gone');
is(pending('app1'), $recorded1 - $ul_pending, 'app1: the recorded deltas survived the crash (those of the unlogged source are gone)');
is(pending('app2'), $recorded2, 'app2: the recorded deltas survived the crash');
exact_ok('app1', 'after the crash, deltas pending');
exact_ok('app2', 'after the crash, deltas pending');
is($node->safe_psql('app1', 'SELECT counters.flush() > 0'),
	't', 'app1: flush() folds the deltas recorded before the crash');
is($node->safe_psql('app2', 'SELECT counters.flush() > 0'),
	't', 'app2: flush() folds the deltas recorded before the crash');
is(pending('app1') + pending('app2'), 0, 'nothing pending after flush()');
exact_ok('app1', 'after flush() of the deltas that survived the crash');
exact_ok('app2', 'after flush() of the deltas that survived the crash');
# the emptied unlogged source is counted again from scratch
$node->safe_psql('app1', 'INSERT INTO ul VALUES (1, 1), (2, 2), (2, NULL)');
exact_ok('app1', 'writes to the unlogged source after the crash, deltas pending');
is($node->safe_psql('app1', 'SELECT counters.flush() > 0'), 't', 'app1: flush() folds them');
exact_ok('app1', 'writes to the unlogged source after the crash, folded');
is($node->safe_psql('app1', 'SELECT n, s FROM ul_total'), '3|3', 'its global counter reads 3 rows, sum 3');

# ---------------------------------------------------------------------------
# 8: a clean stop
# ---------------------------------------------------------------------------
set_interval('100ms');
write_some('app1');
folded_by_worker_ok('app1', 'before the stop');
ok($node->stop('fast'), 'the node stops (fast) with the worker running');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP:|was terminated/,
	'no server process crashed (server log)');
like((split /\n/, $log)[-1], qr/database system is shut down/,
	'the server log ends with a clean shutdown');
my @worker_errors = grep { /ERROR/ && !/being accessed by other users/ } split /\n/, $log;
is(scalar(@worker_errors), 0, 'no ERROR in the server log')
  or diag(join("\n", @worker_errors[0 .. ($#worker_errors < 9 ? $#worker_errors : 9)]));

done_testing();
