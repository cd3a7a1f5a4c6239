# Smoke test of the TAP harness itself (make installcheck runs t/*.pl with
# prove; scripts/test does so as user postgres).
#
# It proves that PostgreSQL::Test::Cluster (from Debian's PGXS perl modules)
# can init, start, query and stop a private node as the user the TAP tests run
# as, and that this user can read the files of the checkout the TAP tests use:
# it loads scripts/stress/schema.sql (the schema, counters and checks that
# t/010_crash.pl loads) into the node, as psql run by this user, and checks the
# counters it makes.  If this fails, every other TAP test would fail for the
# same plumbing reason.  scripts/test also runs this test from a copy of the
# checkout inside a folder of mode 700 (stage tap-from-private-folder).
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib $FindBin::RealBin;
use CountersTAP qw(checkout_file);

my $schema = checkout_file('scripts/stress/schema.sql');

my $node = PostgreSQL::Test::Cluster->new('plumbing');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'a fresh node answers SELECT 1');

$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', $schema ],
	"psql run by this user loads $schema");
is($node->safe_psql('postgres', 'SELECT stress_check()'),
	'exact', 'the counters of scripts/stress/schema.sql equal their queries');

$node->stop;
ok(!defined $node->{_pid}, 'node stopped');

done_testing();
