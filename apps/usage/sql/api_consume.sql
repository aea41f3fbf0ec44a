-- The API's consume as one statement: the caller function (authentication, scope, rate, the
-- account), the key's use recorded, then the consume function. A refused caller writes
-- nothing but the key's use (what Django records too before it refuses), and its row has only
-- `refusal` and the account set. A wallet holding a grant past its expiry raises
-- {{closing_sqlstate}} from the consume function, and the whole statement is undone.
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
    p_prefix text, p_key_hash text, p_scope text, p_rate_count bigint, p_rate_default bigint,
    p_external_id text, p_feature_code text, p_quantity numeric, p_key text,
    p_fingerprint text, p_metadata jsonb, p_occurred_at timestamptz, p_now timestamptz
) RETURNS TABLE (
    refusal text, account_id bigint, account_status text,
    outcome text, usage_event_id bigint, credit_type_code text, credits_per_unit numeric,
    credits numeric, balance_after numeric, available_after numeric,
    occurred_at timestamptz, created_at timestamptz, d_required numeric,
    d_available numeric, d_limit numeric, d_used numeric
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c record;
BEGIN
    {{find_caller}}
    IF c.refusal IS NOT NULL THEN
        RETURN QUERY SELECT c.refusal, c.account_id, c.account_status, NULL::text,
            NULL::bigint, NULL::text, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::numeric, NULL::numeric,
            NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::text, c.account_id, c.account_status, x.*
    FROM {{consume_function}}(c.account_id, p_feature_code, p_quantity, p_key, p_fingerprint,
                              p_metadata, p_occurred_at, p_now) x;
END
$$;
