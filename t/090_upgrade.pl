# Extension upgrades: every older version that has an update path to the
# default version is installed, given some history, and updated with
# ALTER EXTENSION ... UPDATE; the result must hold the same objects,
# columns, function definitions and privileges as a fresh install of the
# default version, and keep its rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
});
$node->start;

# What an install looks like, as text that can be compared.
my $describe = q{
SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migration_tools')
UNION ALL
SELECT format('column %s.%s %s notnull=%s default=%s', c.relname, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid))
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'migration_tools'::regnamespace
UNION ALL
SELECT format('acl %s %s', c.relname, c.relacl)
  FROM pg_class c WHERE c.relnamespace = 'migration_tools'::regnamespace
UNION ALL
SELECT format('function %s returns %s secdef=%s volatile=%s config=%s acl=%s src=%s',
              p.oid::regprocedure, pg_get_function_result(p.oid), p.prosecdef,
              p.provolatile, p.proconfig, p.proacl, md5(p.prosrc))
  FROM pg_proc p WHERE p.pronamespace = 'migration_tools'::regnamespace
UNION ALL
SELECT format('view %s %s', c.relname, md5(pg_get_viewdef(c.oid)))
  FROM pg_class c
 WHERE c.relnamespace = 'migration_tools'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT format('constraint %s %s', conrelid::regclass, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE connamespace = 'migration_tools'::regnamespace
ORDER BY 1};

my $default = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'migration_tools'");
my @versions = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions
	  WHERE name = 'migration_tools' ORDER BY version");
ok((grep { $_ eq $default } @versions), "default version $default is installable");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION migration_tools');
my $fresh = $node->safe_psql('fresh', $describe);
isnt($fresh, '', 'a fresh install has objects to compare');

my ($ret, $out, $err) = $node->psql('fresh', 'ALTER EXTENSION migration_tools UPDATE');
like($err, qr/version "\Q$default\E" of extension "migration_tools" is already installed/,
	'updating the default version is a no-op');

my @old = split /\n/, $node->safe_psql('postgres',
	"SELECT source FROM pg_extension_update_paths('migration_tools')
	  WHERE target = '$default' AND path IS NOT NULL AND source <> '$default'
	  ORDER BY source");
note('older versions with an update path: ' . (@old ? join(', ', @old) : 'none'));
is(scalar(@old), scalar(@versions) - 1,
	'every older version has an update path to the default');

foreach my $v (@old)
{
	my $db = "from_$v";
	$db =~ s/\W/_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION migration_tools VERSION '$v'");
	$node->safe_psql($db,
		"INSERT INTO migration_tools.migrations (version, checksum, up_sql, state)
		 VALUES ('0001', encode(sha256('SELECT 1'), 'hex'), 'SELECT 1', 'applied')");
	$node->safe_psql($db, 'ALTER EXTENSION migration_tools UPDATE');
	is($node->safe_psql($db,
			"SELECT extversion FROM pg_extension WHERE extname = 'migration_tools'"),
		$default, "$v updates to $default");
	is($node->safe_psql($db, $describe), $fresh,
		"$v updated to $default has the same objects as a fresh install");
	is($node->safe_psql($db,
			"SELECT version || ' ' || state FROM migration_tools.migrations"),
		'0001 applied', "$v update keeps the history rows");
}

$node->stop;
done_testing();
