# Makefile for migration_tools (PGXS)

MODULE_big = migration_tools
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
PGFILEDESC = "migration_tools - safe schema and data migrations"

EXTENSION = migration_tools
# The install script is assembled from one file per subsystem in sql/install.
DATA_built = sql/migration_tools--1.1.sql
# Released versions' install scripts are frozen files; upgrades go through
# sql/migration_tools--A--B.sql.
DATA = sql/migration_tools--1.0.sql $(wildcard sql/migration_tools--*--*.sql)

# pg_regress inputs are every sql/*.sql that is not an extension script.
REGRESS = $(sort $(basename $(notdir $(filter-out sql/migration_tools--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --temp-config=$(srcdir)/test/migration_tools.conf \
	--temp-instance=./tmp_check_regress --load-extension=migration_tools
ISOLATION = $(sort $(basename $(notdir $(wildcard specs/*.spec))))
ISOLATION_OPTS = --temp-config=$(srcdir)/test/migration_tools.conf \
	--temp-instance=./tmp_check_iso --load-extension=migration_tools
TAP_TESTS = 1

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wmissing-prototypes -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers -Wno-implicit-fallthrough

# No LLVM bitcode: the JIT gains nothing from this module, and it would
# require clang at build time.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/migration_tools--1.1.sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso
