"""PostgreSQL fast path: one function call per consume instead of a dozen round trips. It applies exactly the rules of the portable path in
apps/usage/services.py; the same tests run against both. Frozen here: change it in a new
migration with CREATE OR REPLACE."""

from django.db import migrations

CONSUME = r"""
CREATE OR REPLACE FUNCTION creditdesk_consume(
    p_account_id bigint, p_feature_code text, p_quantity numeric, p_key text,
    p_fingerprint text, p_metadata jsonb, p_occurred_at timestamptz, p_now timestamptz
) RETURNS TABLE (
    outcome text, usage_event_id bigint, feature_id bigint, feature_code text,
    credit_type_id bigint, credit_type_code text, quantity numeric, credits_per_unit numeric,
    credits numeric, balance_after numeric, available_after numeric, occurred_at timestamptz,
    created_at timestamptz, metadata jsonb, d_required numeric, d_available numeric,
    d_limit numeric, d_used numeric
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ev record; f record; w record;
    v_grant_ids bigint[]; v_grant_left numeric[];
    v_enabled boolean; v_cpu numeric; v_limit numeric; v_period timestamptz;
    v_overdraft numeric := 0; v_cost numeric; v_expired numeric := 0; v_used numeric;
    v_available numeric; v_balance numeric; v_debt numeric; v_left numeric; v_take numeric;
    v_event_id bigint;
BEGIN
    -- 1. A repeat of an idempotency key answers with the first result, whatever happened since.
    IF p_key IS NOT NULL THEN
        SELECT e.*, ft.code::text AS fcode, ct.code::text AS ctcode INTO ev
        FROM usage_usageevent e
        JOIN catalog_feature ft ON ft.id = e.feature_id
        JOIN catalog_credittype ct ON ct.id = e.credit_type_id
        WHERE e.account_id = p_account_id AND e.idempotency_key = p_key;
        IF FOUND THEN
            IF ev.fingerprint <> p_fingerprint THEN
                RETURN QUERY SELECT 'idempotency_key_reused', NULL::bigint, NULL::bigint,
                    NULL::text, NULL::bigint, NULL::text, NULL::numeric, NULL::numeric,
                    NULL::numeric, NULL::numeric, NULL::numeric, NULL::timestamptz,
                    NULL::timestamptz, NULL::jsonb, NULL::numeric, NULL::numeric,
                    NULL::numeric, NULL::numeric;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'replayed', ev.id, ev.feature_id, ev.fcode, ev.credit_type_id,
                ev.ctcode, ev.quantity, ev.credits_per_unit, ev.credits, ev.balance_after,
                ev.available_after, ev.occurred_at, ev.created_at, ev.metadata,
                NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
            RETURN;
        END IF;
    END IF;

    -- 2. Entitlement: account status, feature, plan terms (as apps/usage/selectors.py), in
    --    one statement.
    SELECT a.status, ft.id, ft.code::text AS code, ft.kind, ft.credit_type_id,
           ft.credits_per_unit, ct.code::text AS ctcode, sub.plan_id,
           sub.current_period_start, pl.overage_policy, pl.overage_limit,
           x.id AS pf_id, x.enabled AS pf_enabled, x.credits_per_unit AS pf_cpu,
           x.limit_per_period AS pf_limit
    INTO f
    FROM accounts_account a
    LEFT JOIN catalog_feature ft ON ft.code = p_feature_code AND ft.active
    LEFT JOIN catalog_credittype ct ON ct.id = ft.credit_type_id
    LEFT JOIN accounts_subscription sub
        ON sub.account_id = a.id AND sub.status IN ('trialing', 'active', 'past_due')
    LEFT JOIN catalog_plan pl ON pl.id = sub.plan_id
    LEFT JOIN catalog_planfeature x ON x.plan_id = sub.plan_id AND x.feature_id = ft.id
    WHERE a.id = p_account_id
    LIMIT 1;
    IF f.status IS DISTINCT FROM 'active' THEN
        RETURN QUERY SELECT 'account_suspended', NULL::bigint, NULL::bigint, NULL::text,
            NULL::bigint, NULL::text, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::jsonb,
            NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    IF f.id IS NULL THEN
        RETURN QUERY SELECT 'feature_not_found', NULL::bigint, NULL::bigint, p_feature_code,
            NULL::bigint, NULL::text, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::jsonb,
            NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    IF f.plan_id IS NOT NULL THEN
        v_enabled := f.pf_id IS NOT NULL AND f.pf_enabled;
        v_cpu := COALESCE(f.pf_cpu, f.credits_per_unit);
        v_limit := f.pf_limit;
        v_period := f.current_period_start;
        IF f.overage_policy = 'allow' THEN v_overdraft := COALESCE(f.overage_limit, 0); END IF;
    ELSE
        v_enabled := f.kind = 'metered';
        v_cpu := f.credits_per_unit;
    END IF;
    IF f.kind <> 'metered' OR NOT v_enabled THEN
        RETURN QUERY SELECT CASE WHEN f.kind <> 'metered' THEN 'feature_is_boolean'
            ELSE 'feature_not_enabled' END, NULL::bigint, f.id, f.code, NULL::bigint,
            f.ctcode, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::jsonb,
            NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    v_cost := p_quantity * v_cpu;
    IF v_cost <> round(v_cost, 6) THEN
        RETURN QUERY SELECT 'inexact_cost', NULL::bigint, f.id, f.code, f.credit_type_id,
            f.ctcode, p_quantity, v_cpu, v_cost, NULL::numeric, NULL::numeric,
            NULL::timestamptz, NULL::timestamptz, NULL::jsonb, v_cost, NULL::numeric,
            NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    v_cost := round(v_cost, 6);

    -- 3. Lock the wallet; every writer of its balance and grants takes this lock first.
    SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
    WHERE x.account_id = p_account_id AND x.credit_type_id = f.credit_type_id FOR UPDATE;
    IF NOT FOUND AND v_overdraft > 0 THEN
        INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, created_at,
                                    updated_at)
        VALUES (p_account_id, f.credit_type_id, 0, 0, 0, p_now, p_now) ON CONFLICT DO NOTHING;
        SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
        WHERE x.account_id = p_account_id AND x.credit_type_id = f.credit_type_id FOR UPDATE;
    END IF;

    -- 4. Quota, read after the lock (its writers hold the same lock).
    IF v_limit IS NOT NULL AND v_period IS NOT NULL THEN
        SELECT c.used INTO v_used FROM usage_usagecounter c
        WHERE c.account_id = p_account_id AND c.feature_id = f.id AND c.period_start = v_period;
        v_used := COALESCE(v_used, 0);
        IF v_used + p_quantity > v_limit THEN
            RETURN QUERY SELECT 'quota_exceeded', NULL::bigint, f.id, f.code, f.credit_type_id,
                f.ctcode, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
                NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::jsonb,
                NULL::numeric, NULL::numeric, v_limit, v_used;
            RETURN;
        END IF;
    END IF;

    -- 5. Funds: expired-but-unprocessed grants are not spendable.
    IF w.id IS NULL THEN
        IF v_cost > 0 THEN
            RETURN QUERY SELECT 'insufficient_credits', NULL::bigint, f.id, f.code,
                f.credit_type_id, f.ctcode, NULL::numeric, NULL::numeric, NULL::numeric,
                NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz,
                NULL::jsonb, v_cost, 0::numeric, NULL::numeric, NULL::numeric;
            RETURN;
        END IF;
        v_balance := 0;
        v_available := 0;
    ELSE
        -- One statement after the lock: what has expired, and the spendable grants in
        -- burn-down order (priority, soonest expiry with never last, oldest).
        SELECT COALESCE(SUM(x.remaining) FILTER (WHERE x.expires_at <= p_now), 0),
               array_agg(x.id ORDER BY x.priority, x.expires_at NULLS LAST, x.id)
                   FILTER (WHERE x.expires_at IS NULL OR x.expires_at > p_now),
               array_agg(x.remaining ORDER BY x.priority, x.expires_at NULLS LAST, x.id)
                   FILTER (WHERE x.expires_at IS NULL OR x.expires_at > p_now)
        INTO v_expired, v_grant_ids, v_grant_left
        FROM wallets_creditgrant x WHERE x.wallet_id = w.id AND x.remaining > 0;
        v_available := w.balance - v_expired - w.held;
        IF v_cost > v_available + v_overdraft THEN
            RETURN QUERY SELECT 'insufficient_credits', NULL::bigint, f.id, f.code,
                f.credit_type_id, f.ctcode, NULL::numeric, NULL::numeric, NULL::numeric,
                NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz,
                NULL::jsonb, v_cost, v_available, NULL::numeric, NULL::numeric;
            RETURN;
        END IF;
        v_balance := w.balance - v_expired - v_cost;
        v_available := v_balance - w.held;
    END IF;

    -- 6. Write: the usage event, lazy expiry, burn-down draws, overage, wallet, counter.
    INSERT INTO usage_usageevent (account_id, feature_id, credit_type_id, quantity,
        credits_per_unit, credits, balance_after, available_after, idempotency_key,
        fingerprint, metadata, occurred_at, created_at)
    VALUES (p_account_id, f.id, f.credit_type_id, p_quantity, v_cpu, v_cost, v_balance,
        v_available, p_key, p_fingerprint, p_metadata, COALESCE(p_occurred_at, p_now), p_now)
    RETURNING id INTO v_event_id;

    IF w.id IS NOT NULL THEN
        IF v_expired > 0 THEN
            WITH due AS (
                SELECT x.id, x.remaining, x.priority, x.expires_at FROM wallets_creditgrant x
                WHERE x.wallet_id = w.id AND x.remaining > 0 AND x.expires_at <= p_now
            ), zeroed AS (
                UPDATE wallets_creditgrant x SET remaining = 0 FROM due WHERE x.id = due.id
            )
            INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount, balance_after,
                held_change, grant_id, reason, created_at)
            SELECT p_account_id, w.id, 'expire', -due.remaining,
                w.balance - SUM(due.remaining) OVER (
                    ORDER BY due.priority, due.expires_at NULLS LAST, due.id),
                0, due.id, 'expired', p_now
            FROM due ORDER BY due.priority, due.expires_at NULLS LAST, due.id;
        END IF;
        v_balance := w.balance - v_expired;
        v_debt := w.debt;
        v_left := v_cost;
        IF v_left > 0 THEN
            FOR i IN 1 .. COALESCE(array_length(v_grant_ids, 1), 0) LOOP
                v_take := LEAST(v_grant_left[i], v_left);
                UPDATE wallets_creditgrant SET remaining = remaining - v_take
                WHERE id = v_grant_ids[i];
                v_balance := v_balance - v_take;
                INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount,
                    balance_after, held_change, grant_id, usage_event_id, reason, created_at)
                VALUES (p_account_id, w.id, 'consume', -v_take, v_balance, 0, v_grant_ids[i],
                    v_event_id, '', p_now);
                v_left := v_left - v_take;
                EXIT WHEN v_left <= 0;
            END LOOP;
            IF v_left > 0 THEN
                v_debt := v_debt + v_left;
                v_balance := v_balance - v_left;
                INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount,
                    balance_after, held_change, usage_event_id, reason, created_at)
                VALUES (p_account_id, w.id, 'overage', -v_left, v_balance, 0, v_event_id, '',
                    p_now);
            END IF;
        END IF;
        IF v_expired > 0 OR v_cost > 0 THEN
            UPDATE wallets_wallet SET balance = v_balance, debt = v_debt, updated_at = p_now
            WHERE id = w.id;
        END IF;
    END IF;

    IF v_limit IS NOT NULL AND v_period IS NOT NULL THEN
        INSERT INTO usage_usagecounter (account_id, feature_id, period_start, used)
        VALUES (p_account_id, f.id, v_period, p_quantity)
        ON CONFLICT (account_id, feature_id, period_start)
        DO UPDATE SET used = usage_usagecounter.used + EXCLUDED.used;
    END IF;

    RETURN QUERY SELECT 'created', v_event_id, f.id, f.code, f.credit_type_id, f.ctcode,
        p_quantity, v_cpu, v_cost, v_balance, v_available, COALESCE(p_occurred_at, p_now),
        p_now, p_metadata, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
END
$$;

"""

DROP = """
DROP FUNCTION IF EXISTS creditdesk_consume(bigint, text, numeric, text, text, jsonb,
                                          timestamptz, timestamptz);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(CONSUME)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial"), ("wallets", "0002_ledger_append_only")]

    operations = [migrations.RunPython(forward, backward)]
