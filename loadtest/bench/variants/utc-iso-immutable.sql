-- npm run bench -- ledger: utc_iso declared IMMUTABLE, as up to commit 8827356
-- (CREBITOS_SQL=<this file>, loaded after procedures.sql). to_char is only STABLE, so
-- PostgreSQL will not inline the function and each statement calls it up to 11 times.
CREATE OR REPLACE FUNCTION utc_iso(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
