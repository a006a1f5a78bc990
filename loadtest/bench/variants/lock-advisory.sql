-- npm run bench -- locking: post_transaction serialised per account by a transaction-level
-- advisory lock (pg_advisory_xact_lock(account id)), then a plain read, check and UPDATE.
-- Same signature, statuses and bodies as procedures.sql's; loaded after it by the native stack
-- (CREBITOS_SQL=<this file>).
--
-- Why it is correct: every writer of accounts.balance goes through this function and takes the
-- account's advisory lock first; it is released only after the transaction has committed and
-- become visible. Under READ COMMITTED each statement of a VOLATILE plpgsql function takes a new
-- snapshot, so the read after the lock sees the balance the previous holder committed. The
-- row lock the UPDATE takes then never waits. The cost compared with the original: a lock-manager
-- call and one more statement (the read) on every call; and it relies on every writer taking the
-- advisory lock, which the conditional UPDATE does not need.

CREATE OR REPLACE FUNCTION post_transaction(
  p_account     integer,
  p_amount      integer,
  p_kind        char(1),
  p_description varchar(10),
  OUT status    text,
  OUT body      text
)
LANGUAGE plpgsql AS $$
DECLARE
  delta       bigint := CASE p_kind WHEN 'c' THEN p_amount::bigint ELSE -p_amount::bigint END;
  old_balance integer;
  acct_limit  integer;
  new_balance bigint;
BEGIN
  IF p_kind NOT IN ('c', 'd') OR p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'invalid transaction: kind %, amount %', p_kind, p_amount
      USING ERRCODE = 'check_violation';
  END IF;

  PERFORM pg_advisory_xact_lock(p_account);
  SELECT balance, credit_limit INTO old_balance, acct_limit
    FROM accounts WHERE id = p_account;
  IF NOT FOUND THEN
    status := 'no_account';
    RETURN;
  END IF;

  new_balance := old_balance + delta;
  IF new_balance < -acct_limit THEN
    status := 'over_limit';
    RETURN;
  END IF;
  IF new_balance > 2147483647 THEN
    status := 'overflow';
    RETURN;
  END IF;

  UPDATE accounts SET balance = new_balance WHERE id = p_account;
  INSERT INTO ledger (account_id, amount, kind, description, created_at)
  VALUES (p_account, p_amount, p_kind, p_description, clock_timestamp());

  status := 'ok';
  body := '{"limite":' || acct_limit || ',"saldo":' || new_balance || '}';
END
$$;
