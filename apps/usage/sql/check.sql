-- Would a consume succeed now (apps/usage/selectors.check)? The consume function's rules,
-- read without locks and writing nothing: the terms function's terms, the order in which a
-- consume is refused, the cost, the quota counter as it stands, and the credits spendable now
-- (balance less held, less what grants past their expiry still hold before the expiry job
-- writes it off). An on/off feature answers whether the account may use it. The Python check
-- is the portable path; the differential test (tests/usage/test_differential.py) holds the
-- two equal.
--
-- `outcome` is {{allowed}} or the reason it is not; an invalid cost is {{invalid_cost}}
-- (Python words the error).
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
    p_account_id bigint, p_feature_code text, p_quantity numeric, p_now timestamptz
) RETURNS TABLE (
    outcome text, feature_kind text, credit_type_code text, credits_per_unit numeric,
    credits numeric, available numeric, d_limit numeric, d_used numeric
) LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    t record; v_cost numeric; v_used numeric; v_available numeric;
BEGIN
    SELECT * INTO t FROM {{terms_function}}(ARRAY[p_account_id], ARRAY[p_feature_code], p_now);
    feature_kind := t.feature_kind;
    credit_type_code := t.credit_type_code;
    credits_per_unit := t.credits_per_unit;
    IF t.feature_id IS NULL THEN
        outcome := {{feature_not_found}};
    ELSIF t.account_status IS DISTINCT FROM {{account_active}} THEN
        outcome := {{account_suspended}};
    ELSIF NOT t.enabled THEN
        outcome := {{feature_not_enabled}};
    ELSIF t.feature_kind <> {{feature_metered}} THEN
        outcome := {{allowed}};
    ELSE
        v_cost := p_quantity * t.credits_per_unit;
        IF v_cost <> round(v_cost, {{credit_places}}) OR v_cost >= {{credits_limit}} THEN
            outcome := {{invalid_cost}};
        END IF;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN NEXT;
        RETURN;
    END IF;
    credits := round(v_cost, {{credit_places}});

    IF t.limit_per_period IS NOT NULL AND t.period_start IS NOT NULL THEN
        SELECT c.used INTO v_used FROM usage_usagecounter c
        WHERE c.account_id = p_account_id AND c.feature_id = t.feature_id
          AND c.period_start = t.period_start;
        v_used := COALESCE(v_used, 0);
        IF v_used + p_quantity > t.limit_per_period THEN
            outcome := {{quota_exceeded}};
            credits := NULL;
            d_limit := t.limit_per_period;
            d_used := v_used;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    SELECT w.balance - w.held
           - COALESCE(SUM(g.remaining) FILTER (WHERE g.expires_at <= p_now), 0)
    INTO v_available
    FROM wallets_wallet w
    LEFT JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0
    WHERE w.account_id = p_account_id AND w.credit_type_id = t.credit_type_id
    GROUP BY w.id, w.balance, w.held;
    available := COALESCE(v_available, 0);
    outcome := CASE WHEN credits > available + t.overdraft_limit THEN {{insufficient_credits}}
                    ELSE {{allowed}} END;
    RETURN NEXT;
END
$$;
