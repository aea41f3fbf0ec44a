-- What each requested feature costs each requested account now: the terms of the plan
-- version its subscription is on, or the feature's own without a plan; `terms_source` says
-- which ('plan:pro@v3' or 'feature'). The one place these rules live: the consume function joins it
-- (inlined by the planner), `apps/usage/selectors.terms_for` selects from it on PostgreSQL and
-- runs its body, rendered for SQLite, there. Rendered by apps/usage/sql from the Python
-- constants; installed by an InstallSQLFunction migration (docs/ledger.md).
--
-- One row per request, in request order (`ord`); a feature that does not exist or is not
-- active has a NULL feature_id, an account that does not exist a NULL account_status.
CREATE OR REPLACE FUNCTION {{name}}(p_account_ids bigint[], p_feature_codes text[])
RETURNS TABLE (
    ord bigint, account_id bigint, feature_code text, account_status text, feature_id bigint,
    feature_kind text, feature_price numeric, credit_type_id bigint, credit_type_code text,
    terms_source text, enabled boolean, credits_per_unit numeric, limit_per_period numeric,
    period_start timestamptz, overdraft_limit numeric
) LANGUAGE sql STABLE
AS $$
SELECT r.ord, r.account_id, r.feature_code, CAST(a.status AS text), ft.id,
       CAST(ft.kind AS text), ft.credits_per_unit, ft.credit_type_id, CAST(ct.code AS text),
       CASE WHEN pl.id IS NULL THEN {{source_feature}}
            ELSE {{source_plan}} || pl.code || {{version_mark}} || CAST(pl.version AS text) END,
       -- On a plan: what the plan lists as enabled. Without one: metered features, pay as
       -- you go (with packs); on/off features are not enabled.
       CASE WHEN sub.id IS NULL THEN ft.kind = {{feature_metered}}
            ELSE COALESCE(x.enabled, false) END,
       -- The plan's price where it overrides the feature's.
       COALESCE(x.credits_per_unit, ft.credits_per_unit),
       -- The plan's quota per billing period (none without a plan).
       x.limit_per_period,
       sub.current_period_start,
       -- Overdraft: the plan's overage limit where its policy allows overage.
       CASE WHEN pl.overage_policy = {{overage_allow}} THEN COALESCE(pl.overage_limit, 0)
            ELSE 0 END
FROM {{requests}}
LEFT JOIN accounts_account a ON a.id = r.account_id
LEFT JOIN catalog_feature ft ON ft.code = r.feature_code AND ft.active
LEFT JOIN catalog_credittype ct ON ct.id = ft.credit_type_id
LEFT JOIN accounts_subscription sub
    ON sub.account_id = r.account_id AND sub.status IN {{live_statuses}}
LEFT JOIN catalog_plan pl ON pl.id = sub.plan_id
LEFT JOIN catalog_planfeature x ON x.plan_id = sub.plan_id AND x.feature_id = ft.id
$$;
