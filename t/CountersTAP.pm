# t/CountersTAP.pm -- helpers the TAP tests share (use lib $FindBin::RealBin).
#
# checkout_file('scripts/stress/schema.sql') returns the path of that file in
# the checkout (COUNTERS_ROOT if set, else the folder above t/), after opening
# it: a TAP test runs as a user PostgreSQL accepts (postgres under
# scripts/test), who may not be able to read a checkout that root can (one
# below root's home or a mktemp -d folder, both mode 700).  When the file
# cannot be read, the test bails out saying which file, why (the system's
# reason, and the first folder above it that this user may not enter), and
# what to do; it never guesses.
#
# server_pids($node) and wait_gone(@pids): the server processes of a node,
# and waiting until they are gone (after the postmaster was killed).
package CountersTAP;

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno;
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Utils ();
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(checkout_file server_pids wait_gone);

# The checkout: COUNTERS_ROOT, or the parent of the folder this file is in.
sub root
{
	return $ENV{COUNTERS_ROOT} if defined $ENV{COUNTERS_ROOT};
	return abs_path(dirname(__FILE__) . '/..');
}

# The first folder on the way to $path that this user may not enter, with its
# mode and owner ('' if every folder can be entered).
sub closed_folder
{
	my ($path) = @_;
	my @parts = File::Spec->splitdir(dirname(File::Spec->rel2abs($path)));
	my $dir = '';
	foreach my $part (@parts)
	{
		$dir = $dir eq '' ? ($part eq '' ? '/' : $part) : File::Spec->catdir($dir, $part);
		next if -x $dir;
		my @st = stat($dir);
		return $dir unless @st;
		return sprintf('%s (mode %04o, owner %s)',
			$dir, $st[2] & 07777, scalar(getpwuid($st[4])) // $st[4]);
	}
	return '';
}

sub checkout_file
{
	my ($relative) = @_;
	my $path = root() . "/$relative";
	open(my $fh, '<', $path) and return $path;
	my ($why, $denied) = ("$!", $!{EACCES});
	my $user = getpwuid($>) // $>;
	if ($denied)
	{
		my $closed = closed_folder($path);
		BAIL_OUT("cannot read $path: $why: this test runs as user $user, "
			  . ($closed ? "who may not enter $closed" : 'who may not read it')
			  . "; run scripts/test (it runs the TAP tests from a copy of the checkout that $user owns),"
			  . " or make the checkout readable to $user");
	}
	BAIL_OUT("cannot read $path: $why"
		  . (defined $ENV{COUNTERS_ROOT}
			? " (COUNTERS_ROOT=$ENV{COUNTERS_ROOT} must be the top of the checkout)"
			: ''));
}

# Backend and auxiliary process ids of the running node.
sub server_pids
{
	my ($node) = @_;
	my $pids = $node->safe_psql('postgres',
		'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
	return split /\n/, $pids;
}

# Wait until every listed process is gone (orphans of a killed postmaster
# exit when they notice; a new postmaster cannot start while they hold its
# shared memory).
sub wait_gone
{
	my @pids = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		@pids = grep { kill(0, $_) } @pids;
		return 1 unless @pids;
		sleep 0.1;
	}
	diag("processes still alive: @pids");
	return 0;
}

1;
