-- Variant: the ledger back under autovacuum (PostgreSQL's default), to measure what
-- procedures.sql's `autovacuum_enabled = off` on the ledger is worth:
--   loadtest/official-ab.sh loadtest/variants/ledger-autovacuum-on.sql 3
ALTER TABLE ledger RESET (autovacuum_enabled);
