-- npm run bench -- statement: account_statement building its body by text concatenation
-- instead of json_build_object (CREBITOS_SQL=<this file>, loaded after procedures.sql).
-- The same fields, order and values; no spaces around ':' and ','; descricao escaped by to_json.
CREATE OR REPLACE FUNCTION account_statement(p_account integer) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
    SELECT '{"saldo":{"total":' || a.balance
           || ',"data_extrato":"' || utc_iso(now())
           || '","limite":' || a.credit_limit
           || '},"ultimas_transacoes":[' || COALESCE(recent.entries, '') || ']}'
      FROM accounts a
      LEFT JOIN LATERAL (
        SELECT string_agg('{"valor":' || l.amount
                          || ',"tipo":"' || l.kind
                          || '","descricao":' || to_json(l.description)::text
                          || ',"realizada_em":"' || utc_iso(l.created_at) || '"}',
                          ',' ORDER BY l.id DESC) AS entries
          FROM (SELECT amount, kind, description, created_at, id
                  FROM ledger
                 WHERE account_id = a.id
                 ORDER BY id DESC
                 LIMIT 10) l
      ) recent ON true
     WHERE a.id = p_account);
END
$$;
