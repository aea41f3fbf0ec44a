-- The API's check as one statement: the caller function (authentication, scope, rate, the
-- account), the key's use recorded, then the check function. A refused caller's row has only
-- `refusal` and the account set.
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
    p_prefix text, p_key_hash text, p_scope text, p_rate_count bigint, p_rate_default bigint,
    p_external_id text, p_feature_code text, p_quantity numeric, p_now timestamptz
) RETURNS TABLE (
    refusal text, account_id bigint, account_status text,
    outcome text, feature_kind text, credit_type_code text, credits_per_unit numeric,
    credits numeric, available numeric, d_limit numeric, d_used numeric
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c record;
BEGIN
    {{find_caller}}
    IF c.refusal IS NOT NULL THEN
        RETURN QUERY SELECT c.refusal, c.account_id, c.account_status, NULL::text, NULL::text,
            NULL::text, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::numeric;
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::text, c.account_id, c.account_status, x.*
    FROM {{check_function}}(c.account_id, p_feature_code, p_quantity, p_now) x;
END
$$;
