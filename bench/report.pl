#!/usr/bin/perl
# Turn a run's results.tsv (name, value, unit, meaning per line) and its
# machine.txt into the Markdown tables of bench/README.md.
#   perl bench/report.pl RUN_DIR
use strict;
use warnings;

my $dir = shift or die "usage: report.pl RUN_DIR\n";
my (%v, %unit, %what, @order);
open my $fh, '<', "$dir/results.tsv" or die "$dir/results.tsv: $!\n";
while (<$fh>) {
    chomp;
    my ($name, $value, $unit, $what) = split /\t/, $_, 4;
    next unless defined $value;
    push @order, $name unless exists $v{$name};
    $v{$name} = $value;
    $unit{$name} = $unit // '';
    $what{$name} = $what // '';
}
close $fh;

sub val { my $k = shift; return exists $v{$k} ? $v{$k} : '-'; }

if (open my $m, '<', "$dir/machine.txt") {
    (my $base = $dir) =~ s{.*/}{};
    print "Run `$base`:\n\n";
    while (<$m>) { chomp; next unless /\S/; print "- $_\n"; }
    close $m;
    print "\n";
}

my %label = (
    update => 'one plain UPDATE (floor)',
    procedure => 'PL/pgSQL procedure, COMMIT every 10,000 keys',
    client_loop => 'client loop (1000 ids, row by row)',
    mt_key => 'migration_tools, strategy key',
    mt_ctid => 'migration_tools, strategy ctid',
);

# Section 1
my %sizes;
for (@order) { $sizes{$1} = 1 if /^backfill\.(\d+)\./; }
if (%sizes) {
    print "### 1. Backfill throughput, idle server\n\n";
    print "| rows | key | contender | time (s) | rows/s | vs UPDATE | vs procedure | worker start (ms) |\n";
    print "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
    for my $n (sort { $a <=> $b } keys %sizes) {
        for my $k ('', 'uuid_') {
            for my $c (qw(update procedure client_loop mt_key mt_ctid)) {
                my $p = "backfill.$n.$k$c";
                next unless exists $v{"$p.seconds"};
                my $secs = $v{"$p.seconds"};
                $secs .= ' (extrapolated)' if $what{"$p.seconds"} =~ /extrapolated/;
                printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $n,
                    $k ? 'random UUID' : 'bigint 1..n', $label{$c}, $secs,
                    val("$p.rows_per_s"), val("$p.vs_update"), val("$p.vs_procedure"),
                    val("$p.start_ms");
            }
        }
    }
    print "\n";
    for (@order) {
        print "- $_: $what{$_}\n" if /client_loop\.seconds$/ && $what{$_} =~ /extrapolated/;
    }
    print "\n";
}

# Section 2
my @sc = grep { exists $v{"load.$_.tps"} } qw(none procedure mt_key mt_ctid);
if (@sc) {
    my %l = (none => 'no backfill', procedure => 'procedure',
             mt_key => 'migration_tools key', mt_ctid => 'migration_tools ctid');
    print "### 2. Backfill under an application write load\n\n";
    # TPS relative to the run without backfill of the same round
    my (%round_tps, %kept_round);
    if (open my $r, '<', "$dir/rounds.tsv") {
        while (<$r>) {
            chomp;
            my ($kind, $s, $round, $rest) = split /\t/;
            next unless $kind eq 'load' && defined $rest;
            my ($tps) = split / /, $rest;
            $round_tps{$round}{$s} = $tps;
        }
        close $r;
    }
    for my $round (sort keys %round_tps) {
        my $base = $round_tps{$round}{none} or next;
        for my $s (keys %{ $round_tps{$round} }) {
            next if $s eq 'none';
            push @{ $kept_round{$s} }, sprintf("%.0f %%", 100 * $round_tps{$round}{$s} / $base);
        }
    }
    print "| backfill | app TPS (best round) | TPS kept (best vs best) | TPS kept, each round vs the same round's no-backfill run | TPS kept, each round vs the same run before and after the backfill | app p99 (ms) | longest lock wait caused (ms) | waits > 10 ms caused | backfill time (s) |\n";
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for my $s (@sc) {
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $l{$s}, val("load.$s.tps"),
            exists $v{"load.$s.tps_kept"} ? $v{"load.$s.tps_kept"} . ' %' : '-',
            $kept_round{$s} ? join(', ', @{ $kept_round{$s} }) : '-',
            exists $v{"load.$s.tps_kept_same_run"} ? $v{"load.$s.tps_kept_same_run"} : '-',
            val("load.$s.p99_ms"), val("load.$s.max_lock_wait_ms"),
            val("load.$s.lock_waits"), val("load.$s.backfill_seconds");
    }
    print "\n";
    for my $s (@sc) {
        printf "- %s: the job's own record of the longest wait it caused: %s ms\n", $l{$s},
            $v{"load.$s.self_reported_wait_ms"} if exists $v{"load.$s.self_reported_wait_ms"};
    }
    print "\n";
}

# Section 3
my @g = grep { /^growth\./ } @order;
if (@g) {
    print "### 3. Cost growth over a job\n\n";
    print "Each cell: mean batch duration (ms), time per row (us), rows per batch.\n\n";
    print "| rows | job | job time (s) | batches (+ empty sweep batches) | start of the job | middle | end |\n";
    print "| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n";
    my %seen;
    for (@g) {
        next unless /^growth\.(\d+)\.(\w+?)\.(?:start|middle|end|batches|empty_batches|seconds)(?:\.|$)/;
        my ($n, $m) = ($1, $2);
        next if $seen{"$n.$m"}++;
        my @cells = map {
            sprintf "%s ms, %s us, %s", val("growth.$n.$m.$_.ms_per_batch"),
                val("growth.$n.$m.$_.us_per_row"), val("growth.$n.$m.$_.rows_per_batch")
        } qw(start middle end);
        my $secs = exists $v{"growth.$n.$m.seconds"} ? $v{"growth.$n.$m.seconds"}
                 : val("backfill.$n.$m.seconds");
        printf "| %s | %s | %s | %s (+%s) | %s | %s | %s |\n", $n, $m, $secs, val("growth.$n.$m.batches"),
            val("growth.$n.$m.empty_batches"), @cells;
    }
    print "\n";
}
my @mem = grep { /^memory\./ } @order;
if (@mem) {
    print "| rows | job | worker VmHWM (kB) | worker RssAnon, peak (kB) | RssAnon at the end (kB) | RssFile, peak (kB) |\n";
    print "| ---: | --- | ---: | ---: | ---: | ---: |\n";
    my %seen;
    for (@mem) {
        /^memory\.(\d+)\.(\w+?)\.(?:vmhwm|rssanon|rssfile)/ or next;
        next if $seen{"$1.$2"}++;
        printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, val("memory.$1.$2.vmhwm_kb"), val("memory.$1.$2.rssanon_kb"),
            val("memory.$1.$2.rssanon_end_kb"), val("memory.$1.$2.rssfile_kb");
    }
    print "\n";
}

# Sections 4, 5 and anything else: name, value, meaning
for my $sec (['lock_waits', '### 4. lock_waits with many waiting sessions'],
             ['lint', '### 5. lint() on a long migration script'],
             ['', '### Other figures']) {
    my ($prefix, $title) = @$sec;
    my @rows = grep {
        $prefix ? /^\Q$prefix\E[._]/
                : !/^(backfill|load|growth|memory|lock_waits|lint)[._]/
    } @order;
    next unless @rows;
    print "$title\n\n| figure | value | meaning |\n| --- | ---: | --- |\n";
    for (@rows) {
        (my $w = $what{$_}) =~ s/\|/\\|/g;
        printf "| `%s` | %s %s | %s |\n", $_, $v{$_}, $unit{$_}, $w;
    }
    print "\n";
}
