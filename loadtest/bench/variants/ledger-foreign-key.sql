-- npm run bench -- ledger: the repository's ledger plus the foreign key to accounts it had up
-- to commit 8827356 (CREBITOS_SQL=<this file>, loaded after procedures.sql). Its check runs
-- SELECT 1 FROM accounts WHERE id = $1 FOR KEY SHARE on every insert.
ALTER TABLE ledger ADD FOREIGN KEY (account_id) REFERENCES accounts (id);
