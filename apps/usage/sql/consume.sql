-- Consume one event: the batch function's rules (consume_batch.sql) for a batch of one, in
-- scalar statements. It exists only because it is faster: for one event the batch function's
-- array machinery costs about half again as much. Terms come from the terms function and
-- every constant is rendered, so what is left here is the order of the steps, which the
-- differential test (tests/usage/test_differential.py) holds equal to the batch function's
-- and the Python engine's.
--
-- A wallet holding a grant past its expiry raises {{closing_sqlstate}} before anything is
-- written: the Python ledger engine closes such grants, so the caller takes the portable path.
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
    p_account_id bigint, p_feature_code text, p_quantity numeric, p_key text,
    p_fingerprint text, p_metadata jsonb, p_occurred_at timestamptz, p_now timestamptz
) RETURNS TABLE (
    outcome text, usage_event_id bigint, credit_type_code text, credits_per_unit numeric,
    credits numeric, balance_after numeric, available_after numeric,
    occurred_at timestamptz, created_at timestamptz, d_required numeric,
    d_available numeric, d_limit numeric, d_used numeric
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ev record; t record; w record;
    v_grant_ids bigint[]; v_grant_left numeric[]; v_closing boolean;
    v_cost numeric; v_used numeric; v_available numeric; v_balance numeric; v_debt numeric;
    v_left numeric; v_take numeric; v_event_id bigint; v_wallet_created boolean := false;
BEGIN
    -- A repeat of an idempotency key answers with the first result, whatever happened since.
    IF p_key IS NOT NULL THEN
        SELECT e.*, ct.code::text AS ctcode INTO ev
        FROM usage_usageevent e
        JOIN catalog_credittype ct ON ct.id = e.credit_type_id
        WHERE e.account_id = p_account_id AND e.idempotency_key = p_key;
        IF FOUND THEN
            IF ev.fingerprint <> p_fingerprint THEN
                RETURN QUERY SELECT {{idempotency_key_reused}}, NULL::bigint, NULL::text,
                    NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
                    NULL::timestamptz, NULL::timestamptz, NULL::numeric, NULL::numeric,
                    NULL::numeric, NULL::numeric;
                RETURN;
            END IF;
            RETURN QUERY SELECT {{replayed}}, ev.id, ev.ctcode, ev.credits_per_unit, ev.credits,
                ev.balance_after, ev.available_after, ev.occurred_at, ev.created_at,
                NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
            RETURN;
        END IF;
    END IF;

    -- Entitlement, from the terms function; then the cost, exact to a credit's places and
    -- storable, never rounded (Python words the error).
    SELECT * INTO t FROM {{terms_function}}(ARRAY[p_account_id], ARRAY[p_feature_code], p_now);
    IF t.account_status IS DISTINCT FROM {{account_active}} THEN
        outcome := {{account_suspended}};
    ELSIF t.feature_id IS NULL THEN
        outcome := {{feature_not_found}};
    ELSIF NOT t.enabled THEN
        outcome := {{feature_not_enabled}};
    ELSIF t.feature_kind <> {{feature_metered}} THEN
        outcome := {{feature_is_boolean}};
    ELSE
        v_cost := p_quantity * t.credits_per_unit;
        IF v_cost <> round(v_cost, {{credit_places}}) OR v_cost >= {{credits_limit}} THEN
            outcome := {{invalid_cost}};
        END IF;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, NULL::bigint, NULL::text,
            CASE WHEN outcome = {{invalid_cost}} THEN t.credits_per_unit END,
            NULL::numeric, NULL::numeric, NULL::numeric, NULL::timestamptz,
            NULL::timestamptz, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    v_cost := round(v_cost, {{credit_places}});

    -- Lock the wallet; every writer of its balance and grants takes this lock first. An
    -- overdraft plan may charge an account without a wallet: create it (dropped if unused).
    SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
    WHERE x.account_id = p_account_id AND x.credit_type_id = t.credit_type_id FOR UPDATE;
    IF NOT FOUND AND t.overdraft_limit > 0 THEN
        INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, created_at,
                                    updated_at)
        VALUES (p_account_id, t.credit_type_id, 0, 0, 0, p_now, p_now) ON CONFLICT DO NOTHING;
        v_wallet_created := FOUND;
        SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
        WHERE x.account_id = p_account_id AND x.credit_type_id = t.credit_type_id FOR UPDATE;
    END IF;

    -- Read after the lock, in a statement of its own: it sees what the last holder
    -- committed. The grants in burn-down order.
    IF w.id IS NOT NULL THEN
        SELECT array_agg(g.id ORDER BY {{burn_down_order}}),
               array_agg(g.remaining ORDER BY {{burn_down_order}}),
               bool_or(g.expires_at <= p_now)
        INTO v_grant_ids, v_grant_left, v_closing
        FROM wallets_creditgrant g WHERE g.wallet_id = w.id AND g.remaining > 0;
        IF v_closing THEN
            RAISE EXCEPTION 'a grant is past its expiry' USING ERRCODE = {{closing_sqlstate}};
        END IF;
    END IF;

    -- Quota, read under the counter's lock, taken after the wallet's (the same order
    -- everywhere): a feature that costs nothing has no wallet lock to serialise its quota.
    IF t.limit_per_period IS NOT NULL AND t.period_start IS NOT NULL THEN
        INSERT INTO usage_usagecounter (account_id, feature_id, period_start, used)
        VALUES (p_account_id, t.feature_id, t.period_start, 0)
        ON CONFLICT (account_id, feature_id, period_start) DO NOTHING;
        SELECT c.used INTO v_used FROM usage_usagecounter c
        WHERE c.account_id = p_account_id AND c.feature_id = t.feature_id
          AND c.period_start = t.period_start
        FOR UPDATE;
        IF v_used + p_quantity > t.limit_per_period THEN
            RETURN QUERY SELECT {{quota_exceeded}}, NULL::bigint, t.credit_type_code,
                t.credits_per_unit, NULL::numeric, NULL::numeric, NULL::numeric,
                NULL::timestamptz, NULL::timestamptz, NULL::numeric, NULL::numeric,
                t.limit_per_period, v_used;
            IF v_wallet_created THEN DELETE FROM wallets_wallet WHERE id = w.id; END IF;
            RETURN;
        END IF;
    END IF;

    -- Funds.
    IF w.id IS NULL THEN
        IF v_cost > 0 THEN outcome := {{insufficient_credits}}; END IF;
        v_available := 0;
    ELSE
        v_available := w.balance - w.held;
        IF v_cost > v_available + t.overdraft_limit THEN
            outcome := {{insufficient_credits}};
        END IF;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, NULL::bigint, t.credit_type_code, t.credits_per_unit,
            NULL::numeric, NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz,
            v_cost, v_available, NULL::numeric, NULL::numeric;
        IF v_wallet_created THEN DELETE FROM wallets_wallet WHERE id = w.id; END IF;
        RETURN;
    END IF;

    -- Write: the usage event, the burn-down draws, overage, the wallet, the counter.
    v_balance := COALESCE(w.balance, 0) - v_cost;
    INSERT INTO usage_usageevent (account_id, feature_id, credit_type_id, quantity,
        credits_per_unit, credits, balance_after, available_after, idempotency_key,
        fingerprint, metadata, occurred_at, created_at)
    VALUES (p_account_id, t.feature_id, t.credit_type_id, p_quantity, t.credits_per_unit,
        v_cost, v_balance, v_balance - COALESCE(w.held, 0), p_key,
        CASE WHEN p_key IS NULL THEN '' ELSE p_fingerprint END,
        COALESCE(p_metadata, '{}'::jsonb), COALESCE(p_occurred_at, p_now), p_now)
    RETURNING id INTO v_event_id;

    IF w.id IS NOT NULL THEN
        IF v_cost > 0 THEN
            v_balance := w.balance;
            v_debt := w.debt;
            v_left := v_cost;
            FOR i IN 1 .. COALESCE(array_length(v_grant_ids, 1), 0) LOOP
                v_take := LEAST(v_grant_left[i], v_left);
                UPDATE wallets_creditgrant SET remaining = remaining - v_take
                WHERE id = v_grant_ids[i];
                v_balance := v_balance - v_take;
                INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount,
                    balance_after, held_change, grant_id, usage_event_id, reason, created_at)
                VALUES (p_account_id, w.id, {{entry_consume}}, -v_take, v_balance, 0,
                    v_grant_ids[i], v_event_id, '', p_now);
                v_left := v_left - v_take;
                EXIT WHEN v_left <= 0;
            END LOOP;
            IF v_left > 0 THEN
                v_debt := v_debt + v_left;
                v_balance := v_balance - v_left;
                INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount,
                    balance_after, held_change, usage_event_id, reason, created_at)
                VALUES (p_account_id, w.id, {{entry_overage}}, -v_left, v_balance, 0,
                    v_event_id, '', p_now);
            END IF;
            UPDATE wallets_wallet SET balance = v_balance, debt = v_debt, updated_at = p_now
            WHERE id = w.id;
        ELSIF v_wallet_created THEN
            DELETE FROM wallets_wallet WHERE id = w.id;
        END IF;
    END IF;

    IF t.limit_per_period IS NOT NULL AND t.period_start IS NOT NULL THEN
        UPDATE usage_usagecounter SET used = used + p_quantity
        WHERE account_id = p_account_id AND feature_id = t.feature_id
          AND period_start = t.period_start;
    END IF;

    RETURN QUERY SELECT {{created}}, v_event_id, t.credit_type_code, t.credits_per_unit, v_cost,
        COALESCE(w.balance, 0) - v_cost, COALESCE(w.balance, 0) - v_cost - COALESCE(w.held, 0),
        COALESCE(p_occurred_at, p_now), p_now,
        NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
END
$$;
