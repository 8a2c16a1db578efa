-- Helpers the benchmarks install in database "bench" (bench/run does it).

-- A template table of n rows: key (bigint 1..n, or random UUIDs), a text
-- payload of about 50 bytes, a counter the application workload updates,
-- and the column to backfill, NULL everywhere.
CREATE FUNCTION bench_build_template(tab text, n bigint, keykind text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I', tab);
    EXECUTE format(
        'CREATE TABLE %I AS
           SELECT %s AS id,
                  ''customer '' || i || '' '' || md5((i * 7)::text) AS payload,
                  0 AS hits,
                  NULL::text AS slug
             FROM generate_series(1, %s) AS i',
        tab,
        CASE keykind WHEN 'uuid' THEN 'gen_random_uuid()' ELSE 'i::bigint' END,
        n);
END
$$;

-- The usual in-database recipe: a procedure that walks the primary key
-- and commits every "step" rows (keyset pagination, so it works for any
-- key type, including random UUIDs).
CREATE PROCEDURE bench_proc_backfill(tab regclass, step int DEFAULT 10000)
LANGUAGE plpgsql AS $$
DECLARE
    keytype text;
    lo text;
    hi text;
BEGIN
    SELECT format_type(atttypid, atttypmod) INTO keytype
      FROM pg_attribute WHERE attrelid = tab AND attname = 'id';
    LOOP
        -- the key "step" rows on; NULL when fewer are left
        IF lo IS NULL THEN
            EXECUTE format('SELECT id::text AS k FROM %s ORDER BY id
                             OFFSET %s LIMIT 1', tab, step - 1) INTO hi;
        ELSE
            EXECUTE format('SELECT id::text AS k FROM %s WHERE id > $1::%s
                             ORDER BY id OFFSET %s LIMIT 1',
                           tab, keytype, step - 1) INTO hi USING lo;
        END IF;
        IF lo IS NULL AND hi IS NULL THEN
            EXECUTE format('UPDATE %s SET slug = md5(id::text)
                             WHERE slug IS NULL', tab);
        ELSIF lo IS NULL THEN
            EXECUTE format('UPDATE %s SET slug = md5(id::text)
                             WHERE id <= $1::%s AND slug IS NULL',
                           tab, keytype) USING hi;
        ELSIF hi IS NULL THEN
            EXECUTE format('UPDATE %s SET slug = md5(id::text)
                             WHERE id > $1::%s AND slug IS NULL',
                           tab, keytype) USING lo;
        ELSE
            EXECUTE format('UPDATE %s SET slug = md5(id::text)
                             WHERE id > $1::%s AND id <= $2::%s AND slug IS NULL',
                           tab, keytype, keytype) USING lo, hi;
        END IF;
        COMMIT;
        EXIT WHEN hi IS NULL;
        lo := hi;
    END LOOP;
END
$$;

-- Milliseconds one run of a query takes inside the server (no client
-- round trip, no result transfer).
CREATE FUNCTION bench_ms(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 3);
END
$$;
