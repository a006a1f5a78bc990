-- npm run bench -- json: the functions server.ts calls with JSON_IN=node. They do the same work
-- as procedures.sql's post_transaction and account_statement but return plain columns, so the
-- response JSON is assembled in Node instead of PostgreSQL. Loaded after procedures.sql by the
-- native stack (CREBITOS_SQL=<this file>); procedures.sql's functions stay as they are.
--
-- Timestamps are still formatted here (utc_iso): JavaScript's Date has no microseconds, and the
-- bodies must stay byte for byte what the JSON-in-PostgreSQL path sends.

-- post_transaction's logic and locking (see procedures.sql), returning the new balance and the
-- limit as integers instead of the body.
CREATE FUNCTION post_transaction_plain(
  p_account     integer,
  p_amount      integer,
  p_kind        char(1),
  p_description varchar(10),
  OUT status    text,
  OUT saldo     integer,
  OUT limite    integer
)
LANGUAGE plpgsql AS $$
DECLARE
  delta bigint := CASE p_kind WHEN 'c' THEN p_amount::bigint ELSE -p_amount::bigint END;
BEGIN
  IF p_kind NOT IN ('c', 'd') OR p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'invalid transaction: kind %, amount %', p_kind, p_amount
      USING ERRCODE = 'check_violation';
  END IF;

  UPDATE accounts
     SET balance = balance + delta
   WHERE id = p_account
     AND balance + delta BETWEEN -credit_limit AND 2147483647
  RETURNING balance, credit_limit INTO saldo, limite;

  IF NOT FOUND THEN
    PERFORM 1 FROM accounts WHERE id = p_account;
    status := CASE WHEN NOT FOUND THEN 'no_account'
                   WHEN p_kind = 'd' THEN 'over_limit'
                   ELSE 'overflow' END;
    RETURN;
  END IF;

  INSERT INTO ledger (account_id, amount, kind, description, created_at)
  VALUES (p_account, p_amount, p_kind, p_description, clock_timestamp());
  status := 'ok';
END
$$;

-- The statement as rows, newest entry first: one row per entry (at most 10) with the account's
-- columns repeated, one row with NULL entry columns when there is no entry, none for an unknown
-- account. One query, one snapshot, as in account_statement.
CREATE FUNCTION account_statement_rows(p_account integer)
RETURNS TABLE (total integer, limite integer, data_extrato text, valor integer, tipo char(1), descricao varchar(10), realizada_em text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY
    SELECT a.balance, a.credit_limit, utc_iso(now()), l.amount, l.kind, l.description, utc_iso(l.created_at)
      FROM accounts a
      LEFT JOIN LATERAL (
        SELECT amount, kind, description, created_at, id
          FROM ledger
         WHERE account_id = a.id
         ORDER BY id DESC
         LIMIT 10) l ON true
     WHERE a.id = p_account
     ORDER BY l.id DESC;
END
$$;
