# What a hostile or careless role can do to counters with concurrency,
# crashes and the background worker (sql/trust.sql has the rest):
#  1. REINDEX TABLE CONCURRENTLY of a buffered counter's deltas table while
#     writers record deltas: no writer fails while the new index is not
#     ready, and the counter stays exact;
#  2. statement_timeout bounds a COMMIT that waits for a counter row lock
#     (PostgreSQL stops the COMMIT statement's timer before committing);
#  3. DROP EXTENSION counters CASCADE while writers write counted tables:
#     no deadlock, neither for the DROP nor for the writers;
#  4. the background worker folds every counter it can: a counter whose
#     fold fails (its owner put a refusing trigger on its deltas table) is
#     reported in the log and the others are folded all the same;
#  5. the global counter of an UNLOGGED source after a crash: the first
#     write, by a role that may only write the source, recreates its row.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $node = PostgreSQL::Test::Cluster->new('trust');
$node->init;
$node->append_conf(
	'postgresql.conf', qq(
shared_preload_libraries = 'counters'
counters.flush_interval = '100ms'
fsync = off
deadlock_timeout = '100ms'
log_min_messages = warning
));
$node->start;

# chk(counter, query): every row of the counter is a row of its query and
# back, and verify() is empty
sub chk
{
	my ($counter, $query) = @_;
	return $node->safe_psql(
		'postgres', qq(
		SELECT (SELECT count(*) FROM (SELECT * FROM $counter EXCEPT ALL ($query)) a)
		     + (SELECT count(*) FROM (($query) EXCEPT ALL SELECT * FROM $counter) b)
		     + (SELECT count(*) FROM counters.verify('$counter'))));
}

$node->safe_psql(
	'postgres', q(
	CREATE EXTENSION counters;
	CREATE ROLE writer;
	CREATE TABLE ev (k int, v int);
	GRANT INSERT, UPDATE, DELETE, SELECT ON ev TO writer;
	SELECT counters.create_counter('ev_b', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k', 'buffered');
	SELECT counters.create_counter('ev_i', 'SELECT k, count(*) AS n FROM ev GROUP BY k');
	INSERT INTO ev SELECT i % 10, i FROM generate_series(1, 100) i;
	ALTER SYSTEM SET counters.flush_interval = 0;
	SELECT pg_reload_conf();
));

# 1. REINDEX CONCURRENTLY of the deltas table
my $deltas = $node->safe_psql('postgres',
	q(SELECT deltas FROM counters.counter_def WHERE counter = 'ev_b'::regclass));
my $holder = $node->background_psql('postgres');
# recording at the read takes the deltas table's lock until COMMIT; the
# key is one the writer below does not write, since the read applies the
# transaction's deltas to ev_i too, whose row for that key it then holds
$holder->query_safe(q(BEGIN; INSERT INTO ev VALUES (100, 1); SELECT n FROM ev_b WHERE k = 100;));
my $reindex = $node->background_psql('postgres', on_error_stop => 0);
$reindex->query_until(qr/start/, qq(\\echo start
REINDEX TABLE CONCURRENTLY $deltas;
));
$node->poll_query_until('postgres',
	q(SELECT count(*) = 2 FROM pg_index WHERE indrelid = ')
	  . $deltas . q('::regclass))
  or die "REINDEX CONCURRENTLY did not make its new index";
my ($ret, $out, $err) = $node->psql('postgres',
	q(SET ROLE writer; INSERT INTO ev SELECT i % 10, i FROM generate_series(1, 50) i;));
is($ret, 0, 'a buffered write while REINDEX CONCURRENTLY builds the new deltas index');
is($err, '', '... without an error');
$holder->query_safe('COMMIT');
$holder->quit;
$reindex->quit;
$node->poll_query_until('postgres',
	q(SELECT count(*) = 1 FROM pg_index WHERE indrelid = ') . $deltas . q('::regclass))
  or die "REINDEX CONCURRENTLY did not finish";
is(chk('ev_b', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k'), 0, 'ev_b exact after REINDEX CONCURRENTLY');
$node->safe_psql('postgres', 'SELECT counters.flush()');
is(chk('ev_b', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k'), 0, '... and after a flush');

# 2. statement_timeout at COMMIT
$holder = $node->background_psql('postgres');
$holder->query_safe(q(BEGIN; INSERT INTO ev VALUES (3, 3); SELECT n FROM ev_i WHERE k = 3;));
my $start = time();
($ret, $out, $err) = $node->psql('postgres',
	q(SET statement_timeout = '300ms'; BEGIN; INSERT INTO ev VALUES (3, -30); COMMIT;));
my $took = time() - $start;
isnt($ret, 0, 'a COMMIT waiting for a counter row lock fails');
like($err, qr/canceling statement due to statement timeout/, '... on statement_timeout');
cmp_ok($took, '<', 60, '... without waiting for the lock holder');
$holder->query_safe('COMMIT');
$holder->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE v = -30'), '0',
	'the timed-out transaction left no row');
is(chk('ev_i', 'SELECT k, count(*) AS n FROM ev GROUP BY k'), 0, 'ev_i exact');

# 4. the worker folds every counter it can
$node->safe_psql(
	'postgres', q(
	CREATE TABLE f (k int);
	SELECT counters.create_counter('f_ok', 'SELECT k, count(*) AS n FROM f GROUP BY k', 'buffered');
	SELECT counters.create_counter('f_broken', 'SELECT count(*) AS n FROM f', 'buffered');
	CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'not today'; END $$;
	SELECT format('CREATE TRIGGER refuse BEFORE DELETE ON %s FOR EACH ROW EXECUTE FUNCTION refuse()', deltas)
	  FROM counters.counter_def WHERE counter = 'f_broken'::regclass \gexec
	INSERT INTO f SELECT i % 4 FROM generate_series(1, 40) i;
	ALTER SYSTEM SET counters.flush_interval = '100ms';
	SELECT pg_reload_conf();
));
my $ok_deltas = $node->safe_psql('postgres',
	q(SELECT deltas FROM counters.counter_def WHERE counter = 'f_ok'::regclass));
ok( $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM $ok_deltas"),
	'the worker folds a counter next to one it cannot fold');
ok($node->log_contains('could not flush counter public.f_broken'),
	'... and reports the one it cannot fold');
is(chk('f_ok', 'SELECT k, count(*) AS n FROM f GROUP BY k'), 0, 'f_ok exact');
is(chk('f_broken', 'SELECT count(*) AS n FROM f'), 0, 'f_broken exact (reads add its deltas)');
$node->safe_psql('postgres', q(DROP TABLE f CASCADE; ALTER SYSTEM SET counters.flush_interval = 0; SELECT pg_reload_conf();));

# 5. UNLOGGED source, global counter, crash, first write by a writer
$node->safe_psql(
	'postgres', q(
	CREATE UNLOGGED TABLE u (v int);
	GRANT INSERT ON u TO writer;
	SELECT counters.create_counter('u_total', 'SELECT count(*) AS n, sum(v) AS s FROM u');
	SELECT counters.create_counter('u_total_b', 'SELECT count(*) AS n FROM u', 'buffered');
	INSERT INTO u SELECT generate_series(1, 10);
	CHECKPOINT;
));
$node->stop('immediate');
$node->start;
($ret, $out, $err) = $node->psql('postgres', q(SET ROLE writer; INSERT INTO u VALUES (5), (6);));
is($ret, 0, 'after a crash, a writer writes an unlogged source with a global counter');
is($err, '', '... without an error');
is(chk('u_total', 'SELECT count(*) AS n, sum(v) AS s FROM u'), 0, 'u_total exact');
is(chk('u_total_b', 'SELECT count(*) AS n FROM u'), 0, 'u_total_b exact');

# 3. DROP EXTENSION counters CASCADE while writers write
my $deadlocks = 0;
for my $round (1 .. 3)
{
	$node->safe_psql(
		'postgres', q(
		CREATE EXTENSION IF NOT EXISTS counters;
		DROP TABLE IF EXISTS w1, w2;
		CREATE TABLE w1 (k int, v int);
		CREATE TABLE w2 (k int, v int);
		SELECT counters.create_counter('w1_n', 'SELECT k, count(*) AS n FROM w1 GROUP BY k');
		SELECT counters.create_counter('w2_n', 'SELECT k, count(*) AS n FROM w2 GROUP BY k', 'buffered');
		SELECT counters.create_counter('w12_total', 'SELECT count(*) AS n FROM w1');
	));
	my @writers;
	for my $w (1 .. 4)
	{
		my $s = $node->background_psql('postgres', on_error_stop => 0);
		$s->query_until(qr/go/, q(\echo go
SELECT pg_sleep(0.01);
) . join('', map {
			"BEGIN; INSERT INTO w1 VALUES ($_ % 5, 1); INSERT INTO w2 VALUES ($_ % 5, 1); COMMIT;\n"
		} 1 .. 300));
		push @writers, $s;
	}
	sleep(0.3);
	my ($dret, $dout, $derr) = $node->psql('postgres', 'DROP EXTENSION counters CASCADE');
	$deadlocks++ if $derr =~ /deadlock/;
	is($dret, 0, "round $round: DROP EXTENSION counters CASCADE while writers write")
	  or diag($derr);
	for my $s (@writers)
	{
		my $r = $s->query('SELECT 1');
		$deadlocks++ if ($s->{stderr} // '') =~ /deadlock/;
		$s->quit;
	}
}
is($deadlocks, 0, 'no deadlock between DROP EXTENSION and writers');

$node->stop('fast');
done_testing();
