-- Who is calling the API, and for which account: the key presented (by its prefix and the
-- SHA-256 of the whole key) if it is valid, unrevoked and unexpired; whether it carries the
-- scope; whether this request is within its rate (counted in Redis before the call, judged
-- here against the key's own limit or the default); and the account named by external id if
-- the key may see it (any account, or the one it is bound to). The API's consume and check
-- functions start with it, so that a consume or check is one statement, authentication
-- included. `refusal` is NULL when the call may go on, else the reason it may not, in the
-- order Django REST framework's request cycle checks them (key, scope, rate, then the view);
-- the caller then hands the request to Django, which answers it in the API's words.
--
-- The hash comparison is not constant-time, which is safe: timing could at most reveal the
-- stored hash, and a SHA-256 of 240 random bits cannot be reversed.
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
    p_prefix text, p_key_hash text, p_scope text, p_rate_count bigint, p_rate_default bigint,
    p_external_id text, p_now timestamptz
) RETURNS TABLE (
    refusal text, api_key_id bigint, use_unrecorded boolean, account_id bigint,
    account_status text
) LANGUAGE sql STABLE
AS $$
SELECT CASE WHEN k.id IS NULL OR k.secret_hash <> p_key_hash OR k.revoked_at IS NOT NULL
                 OR k.expires_at <= p_now THEN {{not_authenticated}}
            WHEN NOT (k.scopes ? p_scope) THEN {{permission_denied}}
            WHEN p_rate_count > COALESCE(k.rate_limit_per_minute, p_rate_default)
            THEN {{throttled}}
            WHEN a.id IS NULL THEN {{not_found}} END,
       k.id,
       -- A key's use is recorded at most once per LAST_USED_PRECISION (accounts/services.py).
       k.last_used_at IS NULL OR k.last_used_at <= p_now - {{last_used_precision}},
       a.id, CAST(a.status AS text)
FROM (SELECT p_prefix AS prefix) presented
LEFT JOIN accounts_apikey k ON k.prefix = presented.prefix
LEFT JOIN accounts_account a
    ON a.external_id = p_external_id AND (k.account_id IS NULL OR a.id = k.account_id)
$$;
