-- Variant: the ledger back under autovacuum (PostgreSQL's default), to measure what
-- procedures.sql's `autovacuum_enabled = off` on the ledger is worth:
--   loadtest/bench/official-ab.sh loadtest/bench/variants/ledger-autovacuum-on.sql 3
ALTER TABLE ledger RESET (autovacuum_enabled);
