# Crash recovery: counters are ordinary WAL-logged rows written in the
# transaction that changes their source, so whatever a crash interrupts,
# recovery leaves every counter equal to its defining query.
#
# 1. With pgbench writers running (the workload of scripts/check-stress), the
#    postmaster is killed with SIGKILL; after restart every counter equals its
#    query and verify() is empty, and maintenance goes on working.
# 2. An immediate shutdown in the middle of a large bulk UPDATE (300000 rows,
#    work_mem at its minimum, a counter with 150000 keys so that writing the
#    deltas takes a while), at several points of its run: after restart the
#    UPDATE is gone entirely and every counter is exact.  Then the same UPDATE
#    committed, and an immediate shutdown right after: redo keeps it.
#
# Schema, counters and writer scripts come from scripts/stress/ of the
# checkout (see t/CountersTAP.pm).
use strict;
use warnings;

use File::Basename qw(dirname);
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

use lib $FindBin::RealBin;
use CountersTAP qw(checkout_file server_pids wait_gone);

my $stress = dirname(checkout_file('scripts/stress/schema.sql'));

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 40
# a crash must find work to redo: no checkpoint during the test
checkpoint_timeout = '1h'
max_wal_size = '4GB'
log_min_messages = warning
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE crash');
$node->command_ok(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('crash'),
		'-f', "$stress/schema.sql"
	],
	'schema, rows and counters of scripts/stress/schema.sql');

# Every counter against its defining query (EXCEPT ALL both ways) and
# verify(), one test per counter.
sub check_counters
{
	my ($when) = @_;
	my $rows = $node->safe_psql('crash',
		q{SELECT counter, missing, extra, verify_rows FROM stress_compare()});
	my $n = 0;
	foreach my $line (split /\n/, $rows)
	{
		my ($counter, $missing, $extra, $verify) = split /\|/, $line;
		is("$missing $extra $verify", '0 0 0',
			"$when: $counter equals its query, verify() empty");
		$n++;
	}
	is($n, $node->safe_psql('crash', 'SELECT count(*) FROM stress_counter'),
		"$when: every counter checked");
}

# pgbench writers in the background; returns the harness.
my @writer_scripts = qw(ins_one.sql@10 ins_bulk.sql@3 toggle.sql@8
  toggle_bulk.sql@3 move.sql@6 move_bulk.sql@2 sums.sql@6 del_one.sql@3
  del_bulk.sql@2 upsert.sql@3 merge.sql@3 rollback.sql@3 savepoint.sql@3
  notif_ins.sql@3 mark_read.sql@6 mark_all.sql@2 notif_del.sql@1);

sub start_writers
{
	my ($clients, $seconds, $out, $err) = @_;
	my @cmd = (
		$node->installed_command('pgbench'),
		'-n', '-c', $clients, '-j', 2, '-T', $seconds,
		'--random-seed', 20261122, '-D', 'buffered=0',
		'-h', $node->host, '-p', $node->port,
		(map { ('-f', "$stress/$_") } @writer_scripts), 'crash');
	local $ENV{PGOPTIONS} = '-c enable_bitmapscan=off -c jit=off';
	return IPC::Run::start(\@cmd, '>', $out, '2>', $err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

sub events_count
{
	return $node->safe_psql('crash', 'SELECT count(*) FROM events');
}

check_counters('before any crash');

# ---------------------------------------------------------------------------
# 1. kill -9 of the postmaster with writers running
# ---------------------------------------------------------------------------
my ($wout, $werr) = ('', '');
my $before = events_count();
my $writers = start_writers(8, 600, \$wout, \$werr);

# let them commit a good number of transactions (inserts make events grow)
ok( $node->poll_query_until(
		'crash', "SELECT count(*) > $before + 1000 FROM events"),
	'writers are committing');
sleep 1;

my @pids = server_pids($node);
my $committed_before_kill = events_count();
$node->kill9;
ok(wait_gone(@pids), 'every server process of the killed postmaster exited');
eval { $writers->finish; };
note('writers after the kill: ' . (split /\n/, $werr)[-1]) if $werr;
note("events before the kill: $committed_before_kill");

$node->start;
check_counters('after kill -9 of the postmaster');

# maintenance works after recovery (fresh backends, caches rebuilt)
($wout, $werr) = ('', '');
$writers = start_writers(8, 5, \$wout, \$werr);
ok($writers->finish, 'writers run cleanly after recovery') or diag($werr);
check_counters('after writing again');

# ---------------------------------------------------------------------------
# 2. immediate shutdown in the middle of a large bulk UPDATE
# ---------------------------------------------------------------------------
# make the source large: ~300000 rows
$node->safe_psql(
	'crash', q{
	INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, deleted, created_at, note)
	SELECT 1 + h % 20, NULLIF('r' || (h / 20) % 6, 'r0'), ((h / 120) % 10)::smallint,
	       CASE WHEN (h / 1200) % 11 = 0 THEN NULL ELSE (h / 13200) % 1000 END,
	       CASE WHEN (h / 7) % 9 = 0 THEN NULL ELSE ((h / 63) % 50)::int END,
	       CASE WHEN (h / 11) % 8 = 0 THEN NULL ELSE ((h / 88) % 100000) / 100.0 END,
	       (h / 3) % 4 = 0, (h / 5) % 10 = 0,
	       timestamp '2026-01-01' + make_interval(days => ((h / 17) % 30)::int, secs => ((h / 510) % 86400)::int),
	       'large'
	  FROM (SELECT abs(hashint8(g::bigint * 7919))::bigint AS h
	          FROM generate_series(1, 300000) g) s});
# and add a counter with ~150000 keys, so that writing a bulk UPDATE's deltas
# into the counters takes a while (there is a middle to stop it in)
$node->safe_psql(
	'crash', q{
	INSERT INTO stress_counter VALUES ('c_pairs',
	  'SELECT id / 2 AS pair, count(*) AS n, sum(amount) AS amount FROM events GROUP BY id / 2');
	SELECT counters.create_counter(name, query) FROM stress_counter WHERE name = 'c_pairs'});
$node->safe_psql('crash', 'CHECKPOINT');
check_counters('with 300000 more rows and c_pairs');

# Every row changes: it moves to another tenant and day, leaves or enters the
# filters, and its sums change; the note marks the rows of one run.
sub bulk_update
{
	my ($marker) = @_;
	return qq{
	SET work_mem = '64kB';
	UPDATE events
	   SET tenant = tenant % 20 + 1,
	       created_at = created_at + interval '1 day',
	       deleted = NOT deleted,
	       flagged = NOT flagged,
	       amount = coalesce(amount, 0) + 7,
	       qty = NULL,
	       note = '$marker';
};
}

# Where to stop it: a dry run (rolled back after reading a counter, which
# writes the deltas into the counter rows) measures how long the UPDATE and
# the writing of its deltas take; the stops fall early in the scan of the
# source and at 25%, 45% and 65% of that time, where the deltas are being
# summed and written.  Should a run end before its stop (a busy machine
# is not always equally busy), or commit in the moment between the check
# that it still runs and the shutdown, it committed: the counters are
# checked and the stop is tried again, sooner.
my $bulk_pid_sql = q{SELECT pid FROM pg_stat_activity
	WHERE state = 'active' AND query LIKE '%UPDATE events%bulk update%'
	  AND pid <> pg_backend_pid()};
my $t0 = time;
$node->safe_psql('crash',
	'BEGIN; ' . bulk_update('bulk update dry run')
	  . ' SELECT count(*) FROM c_pairs WHERE pair = 1; ROLLBACK;');
my $bulk_seconds = time - $t0;
note(sprintf('the bulk UPDATE and the writing of its deltas take %.1fs', $bulk_seconds));
my @stop_points = (
	[ '0.5s into it', 0.5 ],
	map { [ sprintf('at %d%% of its run', $_ * 100), $_ * $bulk_seconds ] } (0.25, 0.45, 0.65));

my $run = 0;
foreach my $point (@stop_points)
{
	my ($what, $delay) = @$point;
	my $stopped = 0;
	foreach my $try (1 .. 3)
	{
		$run++;
		my $marker = "bulk update $run";
		my ($bout, $berr) = ('', '');
		my $bulk = IPC::Run::start(
			[
				$node->installed_command('psql'), '-X', '-q',
				'-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('crash'),
				'-c', bulk_update($marker)
			],
			'>', \$bout, '2>', \$berr,
			IPC::Run::timeout(2 * $PostgreSQL::Test::Utils::timeout_default));

		ok($node->poll_query_until('crash', "SELECT count(*) = 1 FROM ($bulk_pid_sql) b"),
			"bulk UPDATE is running (to stop $what)");
		sleep $delay;
		if ($node->safe_psql('crash', "SELECT count(*) FROM ($bulk_pid_sql) b") ne '1')
		{
			eval { $bulk->finish; 1 } or $bulk->kill_kill;
			note("the bulk UPDATE ended within ${delay}s; trying again sooner");
			check_counters("after a bulk UPDATE that ended before its stop");
			$delay *= 0.6;
			next;
		}

		$node->stop('immediate');
		eval { $bulk->finish; 1 } or $bulk->kill_kill;
		my $status = eval { $bulk->full_result(0) } // -1;
		isnt($status, 0, "the bulk UPDATE stopped $what did not complete") or diag($bout);

		$node->start;
		my ($left, $all) = split /\|/, $node->safe_psql('crash',
			"SELECT count(*) FILTER (WHERE note = '$marker'), count(*) FROM events");
		if ($left > 0 && $left == $all)
		{
			# its commit record was written between the check above and the
			# shutdown (the client never heard back): it is whole
			note("the bulk UPDATE committed just before its stop; trying again sooner");
			check_counters("after a bulk UPDATE that committed just before its stop");
			$delay *= 0.6;
			next;
		}
		is($left, '0', "immediate shutdown $what: none of the bulk UPDATE is left");
		check_counters("after an immediate shutdown of the bulk UPDATE $what");
		$stopped = 1;
		last;
	}
	ok($stopped, "stopped a bulk UPDATE $what");
}

# the same bulk UPDATE, left to commit, then an immediate shutdown: redo of a
# committed large statement
$node->safe_psql('crash', bulk_update('bulk update committed'));
$node->stop('immediate');
$node->start;
ok( $node->safe_psql(
		'crash',
		q{SELECT count(*) > 300000 FROM events WHERE note = 'bulk update committed'}
	  ) eq 't',
	'the committed bulk UPDATE survived the immediate shutdown');
check_counters('after an immediate shutdown following the committed bulk UPDATE');

$node->stop;
done_testing();
