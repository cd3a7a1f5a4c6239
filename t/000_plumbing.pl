# Smoke test of the TAP harness itself (scripts/test runs t/*.pl with prove).
#
# It needs nothing from the extension: it proves that PostgreSQL::Test::Cluster
# (from Debian's PGXS perl modules) can init, start, query and stop a private
# node as the user scripts/test runs TAP files as. If this fails, every other
# TAP test would fail for the same plumbing reason.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plumbing');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'a fresh node answers SELECT 1');

# The extension's files are installed by scripts/test before TAP runs; this
# only checks that the server can see the control file, not that it loads.
my $available = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_available_extensions WHERE name = 'counters'");
note("counters visible in pg_available_extensions: $available");

$node->stop;
ok(!defined $node->{_pid}, 'node stopped');

done_testing();
