-- npm run bench -- locking: post_transaction with an explicit row lock (SELECT ... FOR UPDATE),
-- then the check in plpgsql, then a plain UPDATE. Same signature, statuses and bodies as
-- procedures.sql's; loaded after it by the native stack (CREBITOS_SQL=<this file>).
--
-- Why it is correct: FOR UPDATE takes the account's row lock before the balance is read, and
-- under READ COMMITTED a locked read returns the latest committed version of the row, so
-- concurrent calls for one account run the read-check-write one after another and the check
-- always sees the balance the previous holder committed. The ledger insert happens under the
-- same lock, as in the original. The cost compared with the original: one more statement (the
-- SELECT) on every call, and the lock is taken even for a debit that is then refused.

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

  SELECT balance, credit_limit INTO old_balance, acct_limit
    FROM accounts WHERE id = p_account
     FOR UPDATE;
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
