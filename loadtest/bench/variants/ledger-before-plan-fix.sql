-- npm run bench -- ledger / npm run ageing -- --compare ledger: the ledger as it was up to
-- commit 8827356, loaded after procedures.sql by the native stack (CREBITOS_SQL=<this file>).
--   - no planner statistics, so each backend plans the statement's query over an empty ledger;
--   - a primary key on id and a second index (account_id, id DESC) for the statement;
--   - utc_iso declared IMMUTABLE, which keeps PostgreSQL from inlining it.

DELETE FROM pg_statistic WHERE starelid = 'ledger'::regclass;
ALTER TABLE ledger DROP CONSTRAINT ledger_pkey;
ALTER TABLE ledger ADD PRIMARY KEY (id);
CREATE INDEX ledger_account_recent ON ledger (account_id, id DESC);

CREATE OR REPLACE FUNCTION utc_iso(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
