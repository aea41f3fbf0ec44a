-- What each requested feature costs each requested account at `p_now`: the terms of the
-- account's contract live then, where it sets them; else the plan version its subscription is
-- on; else the feature's own. `terms_source` says which ('contract', 'plan:pro@v3' or
-- 'feature'; 'contract' when the contract sets any term of the feature). The one place these
-- rules live: the consume function joins it
-- (inlined by the planner), `apps/usage/selectors.terms_for` selects from it on PostgreSQL and
-- runs its body, rendered for SQLite, there. Rendered by apps/usage/sql from the Python
-- constants; installed by an InstallSQLFunction migration (docs/ledger.md).
--
-- One row per request, in request order (`ord`); a feature that does not exist or is not
-- active has a NULL feature_id, an account that does not exist a NULL account_status.
CREATE OR REPLACE FUNCTION {{name}}(
    p_account_ids bigint[], p_feature_codes text[], p_now timestamptz
)
RETURNS TABLE (
    ord bigint, account_id bigint, feature_code text, account_status text, feature_id bigint,
    feature_kind text, feature_price numeric, credit_type_id bigint, credit_type_code text,
    terms_source text, enabled boolean, credits_per_unit numeric, limit_per_period numeric,
    period_start timestamptz, overdraft_limit numeric
) LANGUAGE sql STABLE
AS $$
SELECT r.ord, r.account_id, r.feature_code, CAST(a.status AS text), ft.id,
       CAST(ft.kind AS text), ft.credits_per_unit, ft.credit_type_id, CAST(ct.code AS text),
       CASE WHEN cx.id IS NOT NULL THEN {{source_contract}}
            WHEN pl.id IS NULL THEN {{source_feature}}
            ELSE {{source_plan}} || pl.code || {{version_mark}} || CAST(pl.version AS text) END,
       -- The contract's say; else on a plan: what the plan lists as enabled; without one:
       -- metered features, pay as you go (with packs); on/off features are not enabled.
       COALESCE(cx.enabled, CASE WHEN sub.id IS NULL THEN ft.kind = {{feature_metered}}
                                 ELSE COALESCE(x.enabled, false) END),
       -- The contract's price, else the plan's, where they override the feature's.
       COALESCE(cx.credits_per_unit, x.credits_per_unit, ft.credits_per_unit),
       -- The quota per billing period: the contract's where it sets one (NULL: none), else
       -- the plan's (none without a plan).
       CASE WHEN cx.sets_limit THEN cx.limit_per_period ELSE x.limit_per_period END,
       sub.current_period_start,
       -- Overdraft: on a paid plan (overage is billed at its period's end: without a plan
       -- there is none, and a free trial has no price to bill it with), the overage limit
       -- where the policy allows overage, each term the contract's where it sets it, else
       -- the plan's.
       CASE WHEN sub.id IS NULL OR sub.status = {{subscription_trialing}} THEN 0
            WHEN COALESCE(NULLIF(c.overage_policy, ''), pl.overage_policy) = {{overage_allow}}
            THEN COALESCE(c.overage_limit, pl.overage_limit, 0) ELSE 0 END
FROM {{requests}}
LEFT JOIN accounts_account a ON a.id = r.account_id
LEFT JOIN catalog_feature ft ON ft.code = r.feature_code AND ft.active
LEFT JOIN catalog_credittype ct ON ct.id = ft.credit_type_id
LEFT JOIN accounts_subscription sub
    ON sub.account_id = r.account_id AND sub.status IN {{live_statuses}}
LEFT JOIN catalog_plan pl ON pl.id = sub.plan_id
LEFT JOIN catalog_planfeature x ON x.plan_id = sub.plan_id AND x.feature_id = ft.id
LEFT JOIN catalog_contract c
    ON c.account_id = r.account_id AND c.starts_at <= {{now}}
   AND (c.ends_at IS NULL OR c.ends_at > {{now}})
LEFT JOIN catalog_contractfeature cx ON cx.contract_id = c.id AND cx.feature_id = ft.id
$$;
