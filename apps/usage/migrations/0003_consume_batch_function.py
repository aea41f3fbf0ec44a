"""PostgreSQL: consume many events in one function call, set-based; and the single consume
function again, returning the same row shape, with the quota counter locked, costs beyond a
credit column rejected, and no empty wallet left behind by a failed consume.

`creditdesk_consume_batch` applies exactly the rules of the portable path in
apps/usage/services.py (the same tests run against both), in three phases:

1. read, in a handful of statements for the whole batch: each event's terms and any earlier
   event with its idempotency key; then lock the wallets it needs in id order (creating the
   ones an overdraft plan needs), read their grants, lock the quota counters it needs;
2. decide each event in order, in memory (arrays), exactly as a single consume would;
3. write with one statement per table: usage events, ledger entries, grants, wallets,
   counters.

A single consume stays on `creditdesk_consume`: for one event its few scalar statements cost
about two thirds of the batch function's array machinery. Both apply the same rules; the same
tests run against both and against the Python path. Frozen once released: change them in a
new migration.
"""

from importlib import import_module

from django.db import migrations

CONSUME_BATCH = r"""
CREATE OR REPLACE FUNCTION creditdesk_consume_batch(
    p_account_ids bigint[], p_features text[], p_quantities numeric[], p_keys text[],
    p_fingerprints text[], p_metadata jsonb[], p_occurred_at timestamptz[], p_now timestamptz
) RETURNS TABLE (
    outcome text, usage_event_id bigint, credit_type_code text, credits_per_unit numeric,
    credits numeric, balance_after numeric, available_after numeric,
    occurred_at timestamptz, created_at timestamptz, d_required numeric,
    d_available numeric, d_limit numeric, d_used numeric
) LANGUAGE plpgsql
-- Plan each statement once per connection: planning the joins afresh on every call (custom
-- plans for array parameters) would cost more than running them. Every statement here reads
-- a few rows by key, so a sequential scan is never right; forbid it, so that a plan made while
-- a table was small (or its statistics stale) cannot scan it once it is large.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    n int := COALESCE(array_length(p_account_ids, 1), 0);
    v_seq regclass := pg_get_serial_sequence('usage_usageevent', 'id')::regclass;
    -- per event: terms, earlier event with the key, previous event in the batch with the key
    e_ord int[]; e_status text[]; e_feature bigint[]; e_kind text[]; e_ct bigint[]; e_ctcode text[];
    e_enabled boolean[]; e_cpu numeric[]; e_limit numeric[]; e_period timestamptz[];
    e_overdraft numeric[]; e_usable boolean[]; e_prev int[]; e_wallet int[]; e_counter int[];
    pr_id bigint[]; pr_fingerprint text[]; pr_ctcode text[]; pr_cpu numeric[];
    pr_credits numeric[]; pr_balance numeric[]; pr_available numeric[];
    pr_occurred timestamptz[]; pr_created timestamptz[];
    k_owner int[];  -- per event: the event in this batch that owns its key after it
    -- locked wallets, their grants in burn-down order, quota counters
    w_id bigint[]; w_account bigint[]; w_ct bigint[]; w_balance numeric[]; w_held numeric[];
    w_debt numeric[]; w_touched boolean[]; w_next int[]; w_last int[]; w_created bigint[];
    g_id bigint[]; g_left numeric[]; g_orig numeric[]; g_wallet int[]; g_expired boolean[];
    c_id bigint[]; c_used numeric[]; c_orig numeric[]; c_account bigint[]; c_feature bigint[];
    c_period timestamptz[];
    -- results, per event
    o_outcome text[]; o_event bigint[]; o_ctcode text[]; o_cpu numeric[]; o_credits numeric[];
    o_balance numeric[]; o_available numeric[]; o_occurred timestamptz[];
    o_created timestamptz[]; o_required numeric[]; o_avail_err numeric[]; o_limit numeric[];
    o_used numeric[];
    -- rows to write
    u_n int := 0; u_id bigint[]; u_account bigint[]; u_feature bigint[]; u_ct bigint[];
    u_quantity numeric[]; u_cpu numeric[]; u_credits numeric[]; u_balance numeric[];
    u_available numeric[]; u_key text[]; u_fingerprint text[]; u_metadata jsonb[];
    u_occurred timestamptz[];
    -- (each append sets every l_* and u_* element, so that all start at subscript 1)
    l_n int := 0; l_account bigint[]; l_wallet bigint[]; l_kind text[]; l_amount numeric[];
    l_balance numeric[]; l_grant bigint[]; l_event bigint[]; l_reason text[];
    -- working values
    i int; k int; wi int; ci int; gi int; owner int;
    v_cost numeric; v_left numeric; v_take numeric; v_available numeric; v_event bigint;
BEGIN
    IF n = 0 THEN RETURN; END IF;
    -- Arrays that are unnested together must all start at subscript 1 (assigning element i
    -- of a NULL array would start it at i).
    o_outcome := array_fill(NULL::text, ARRAY[n]); o_event := array_fill(NULL::bigint, ARRAY[n]);
    o_ctcode := array_fill(NULL::text, ARRAY[n]); o_cpu := array_fill(NULL::numeric, ARRAY[n]);
    o_credits := o_cpu; o_balance := o_cpu; o_available := o_cpu; o_required := o_cpu;
    o_avail_err := o_cpu; o_limit := o_cpu; o_used := o_cpu;
    o_occurred := array_fill(NULL::timestamptz, ARRAY[n]); o_created := o_occurred;

    -- 1a. Terms of every event (as apps/usage/selectors.py) and earlier events with its key.
    --     Aggregated from rows sorted by event (one sort, not one per array); the loop below
    --     checks that order.
    SELECT array_agg(s.ord), array_agg(s.status), array_agg(s.feature_id), array_agg(s.kind),
           array_agg(s.credit_type_id), array_agg(s.ctcode), array_agg(s.enabled),
           array_agg(s.cpu), array_agg(s.quota), array_agg(s.period), array_agg(s.overdraft),
           array_agg(s.prev), array_agg(s.pr_id), array_agg(s.pr_fingerprint),
           array_agg(s.pr_ctcode), array_agg(s.pr_cpu), array_agg(s.pr_credits),
           array_agg(s.pr_balance), array_agg(s.pr_available), array_agg(s.pr_occurred),
           array_agg(s.pr_created)
    INTO e_ord, e_status, e_feature, e_kind, e_ct, e_ctcode, e_enabled, e_cpu, e_limit,
         e_period, e_overdraft, e_prev, pr_id, pr_fingerprint, pr_ctcode, pr_cpu, pr_credits,
         pr_balance, pr_available, pr_occurred, pr_created
    FROM (
        SELECT r.ord::int AS ord, a.status::text AS status, ft.id AS feature_id,
               ft.kind::text AS kind, ft.credit_type_id, ct.code::text AS ctcode,
               CASE WHEN sub.plan_id IS NULL THEN ft.kind = 'metered'
                    ELSE COALESCE(x.enabled, false) END AS enabled,
               COALESCE(x.credits_per_unit, ft.credits_per_unit) AS cpu,
               CASE WHEN sub.plan_id IS NOT NULL AND sub.current_period_start IS NOT NULL
                    THEN x.limit_per_period END AS quota,
               sub.current_period_start AS period,
               CASE WHEN pl.overage_policy = 'allow' THEN COALESCE(pl.overage_limit, 0)
                    ELSE 0 END AS overdraft,
               r.prev::int AS prev, pr.id AS pr_id, pr.fingerprint::text AS pr_fingerprint,
               pct.code::text AS pr_ctcode, pr.credits_per_unit AS pr_cpu,
               pr.credits AS pr_credits, pr.balance_after AS pr_balance,
               pr.available_after AS pr_available, pr.occurred_at AS pr_occurred,
               pr.created_at AS pr_created
        FROM (
            SELECT u.*, CASE WHEN u.key IS NOT NULL THEN
                       lag(u.ord) OVER (PARTITION BY u.account_id, u.key ORDER BY u.ord) END
                       AS prev
            FROM unnest(p_account_ids, p_features, p_keys)
                 WITH ORDINALITY AS u(account_id, code, key, ord)
        ) r
        LEFT JOIN accounts_account a ON a.id = r.account_id
        LEFT JOIN catalog_feature ft ON ft.code = r.code AND ft.active
        LEFT JOIN catalog_credittype ct ON ct.id = ft.credit_type_id
        LEFT JOIN accounts_subscription sub
            ON sub.account_id = r.account_id AND sub.status IN ('trialing', 'active', 'past_due')
        LEFT JOIN catalog_plan pl ON pl.id = sub.plan_id
        LEFT JOIN catalog_planfeature x ON x.plan_id = sub.plan_id AND x.feature_id = ft.id
        LEFT JOIN usage_usageevent pr
            ON r.key IS NOT NULL AND pr.account_id = r.account_id AND pr.idempotency_key = r.key
        LEFT JOIN catalog_credittype pct ON pct.id = pr.credit_type_id
        ORDER BY r.ord
    ) s;

    FOR i IN 1 .. n LOOP
        IF e_ord[i] <> i THEN RAISE EXCEPTION 'terms out of event order'; END IF;
        e_usable[i] := e_status[i] = 'active' AND e_kind[i] = 'metered' AND e_enabled[i];
    END LOOP;

    -- 1b. Lock the wallets the batch may charge, in id order, in one statement; every writer
    --     of a wallet's balance and grants takes this lock first. An overdraft plan may charge
    --     an account that has no wallet yet: create it first (removed again if unused).
    WITH created AS (
        INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt,
                                    created_at, updated_at)
        SELECT DISTINCT t.a, t.c, 0, 0, 0, p_now, p_now
        FROM unnest(p_account_ids, e_ct, e_overdraft, e_usable) AS t(a, c, od, ok)
        WHERE t.ok AND t.od > 0
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING RETURNING id
    ) SELECT array_agg(id) INTO w_created FROM created;

    SELECT array_agg(w.id), array_agg(w.account_id), array_agg(w.credit_type_id),
           array_agg(w.balance), array_agg(w.held), array_agg(w.debt)
    INTO w_id, w_account, w_ct, w_balance, w_held, w_debt
    FROM (
        SELECT x.id, x.account_id, x.credit_type_id, x.balance, x.held, x.debt
        FROM wallets_wallet x
        WHERE (x.account_id, x.credit_type_id) IN (
            SELECT t.a, t.c FROM unnest(p_account_ids, e_ct, e_usable) AS t(a, c, ok) WHERE t.ok)
        ORDER BY x.id FOR UPDATE
    ) w;

    IF w_id IS NOT NULL THEN
        w_touched := array_fill(false, ARRAY[array_length(w_id, 1)]);
        SELECT array_agg(w.wi ORDER BY r.ord) INTO e_wallet
        FROM unnest(p_account_ids, e_ct) WITH ORDINALITY AS r(a, c, ord)
        LEFT JOIN unnest(w_account, w_ct) WITH ORDINALITY AS w(a, c, wi)
            ON w.a = r.a AND w.c = r.c;

        -- Read after the lock, in a statement of its own: it sees what the last holder
        -- committed. Burn-down order: priority, soonest expiry (never last), oldest.
        SELECT array_agg(g.id ORDER BY w.wi, g.priority, g.expires_at NULLS LAST, g.id),
               array_agg(g.remaining ORDER BY w.wi, g.priority, g.expires_at NULLS LAST, g.id),
               array_agg(w.wi ORDER BY w.wi, g.priority, g.expires_at NULLS LAST, g.id),
               array_agg(g.expires_at IS NOT NULL AND g.expires_at <= p_now
                         ORDER BY w.wi, g.priority, g.expires_at NULLS LAST, g.id)
        INTO g_id, g_left, g_wallet, g_expired
        FROM unnest(w_id) WITH ORDINALITY AS w(id, wi)
        JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0;
        g_orig := g_left;

        -- Grants past their expiry that the job has not reached yet are not spendable:
        -- expire them here (written only if the batch charges anything, as in Python).
        FOR k IN 1 .. COALESCE(array_length(g_id, 1), 0) LOOP
            wi := g_wallet[k];
            IF w_next[wi] IS NULL THEN w_next[wi] := k; END IF;
            w_last[wi] := k;
            IF g_expired[k] THEN
                w_balance[wi] := w_balance[wi] - g_left[k];
                w_touched[wi] := true;
                l_n := l_n + 1;
                l_account[l_n] := w_account[wi]; l_wallet[l_n] := w_id[wi];
                l_kind[l_n] := 'expire'; l_amount[l_n] := -g_left[k];
                l_balance[l_n] := w_balance[wi]; l_grant[l_n] := g_id[k];
                l_event[l_n] := NULL; l_reason[l_n] := 'expired';
                g_left[k] := 0;
            END IF;
        END LOOP;
    END IF;

    -- 1c. Quota counters, locked after the wallets (the same order everywhere): a feature
    --     that costs nothing has no wallet lock to serialise its quota.
    IF EXISTS (SELECT 1 FROM unnest(e_limit, e_usable) AS t(l, ok) WHERE t.ok AND t.l IS NOT NULL)
    THEN
        INSERT INTO usage_usagecounter (account_id, feature_id, period_start, used)
        SELECT DISTINCT t.a, t.f, t.p, 0
        FROM unnest(p_account_ids, e_feature, e_period, e_limit, e_usable) AS t(a, f, p, l, ok)
        WHERE t.ok AND t.l IS NOT NULL
        ORDER BY 1, 2, 3
        ON CONFLICT (account_id, feature_id, period_start) DO NOTHING;

        SELECT array_agg(c.id), array_agg(c.used), array_agg(c.account_id),
               array_agg(c.feature_id), array_agg(c.period_start)
        INTO c_id, c_used, c_account, c_feature, c_period
        FROM (
            SELECT y.id, y.used, y.account_id, y.feature_id, y.period_start
            FROM usage_usagecounter y
            WHERE (y.account_id, y.feature_id, y.period_start) IN (
                SELECT t.a, t.f, t.p
                FROM unnest(p_account_ids, e_feature, e_period, e_limit, e_usable)
                     AS t(a, f, p, l, ok)
                WHERE t.ok AND t.l IS NOT NULL)
            ORDER BY y.id FOR UPDATE
        ) c;
        c_orig := c_used;

        SELECT array_agg(c.ci ORDER BY r.ord) INTO e_counter
        FROM unnest(p_account_ids, e_feature, e_period, e_limit)
             WITH ORDINALITY AS r(a, f, p, l, ord)
        LEFT JOIN unnest(c_account, c_feature, c_period) WITH ORDINALITY AS c(a, f, p, ci)
            ON r.l IS NOT NULL AND c.a = r.a AND c.f = r.f AND c.p = r.p;
    END IF;

    -- 2. Each event in order, as a single consume would decide it.
    FOR i IN 1 .. n LOOP
        -- A repeat of an idempotency key answers with the first result.
        IF p_keys[i] IS NOT NULL THEN
            IF pr_id[i] IS NOT NULL THEN
                IF pr_fingerprint[i] <> p_fingerprints[i] THEN
                    o_outcome[i] := 'idempotency_key_reused';
                ELSE
                    o_outcome[i] := 'replayed'; o_event[i] := pr_id[i];
                    o_ctcode[i] := pr_ctcode[i]; o_cpu[i] := pr_cpu[i];
                    o_credits[i] := pr_credits[i]; o_balance[i] := pr_balance[i];
                    o_available[i] := pr_available[i]; o_occurred[i] := pr_occurred[i];
                    o_created[i] := pr_created[i];
                END IF;
                CONTINUE;
            END IF;
            owner := CASE WHEN e_prev[i] IS NOT NULL THEN k_owner[e_prev[i]] END;
            IF owner IS NOT NULL THEN
                k_owner[i] := owner;
                IF p_fingerprints[owner] <> p_fingerprints[i] THEN
                    o_outcome[i] := 'idempotency_key_reused';
                ELSE
                    o_outcome[i] := 'replayed'; o_event[i] := o_event[owner];
                    o_ctcode[i] := o_ctcode[owner]; o_cpu[i] := o_cpu[owner];
                    o_credits[i] := o_credits[owner]; o_balance[i] := o_balance[owner];
                    o_available[i] := o_available[owner]; o_occurred[i] := o_occurred[owner];
                    o_created[i] := o_created[owner];
                END IF;
                CONTINUE;
            END IF;
        END IF;

        -- Entitlement.
        IF e_status[i] IS DISTINCT FROM 'active' THEN
            o_outcome[i] := 'account_suspended'; CONTINUE;
        END IF;
        IF e_feature[i] IS NULL THEN o_outcome[i] := 'feature_not_found'; CONTINUE; END IF;
        IF e_kind[i] <> 'metered' THEN o_outcome[i] := 'feature_is_boolean'; CONTINUE; END IF;
        IF NOT e_enabled[i] THEN o_outcome[i] := 'feature_not_enabled'; CONTINUE; END IF;

        -- Cost: exact to 6 places and storable, never rounded (Python words the error).
        v_cost := p_quantities[i] * e_cpu[i];
        o_cpu[i] := e_cpu[i];
        IF v_cost <> round(v_cost, 6) OR v_cost >= 1e18 THEN
            o_outcome[i] := 'invalid_cost'; CONTINUE;
        END IF;
        v_cost := round(v_cost, 6);
        o_ctcode[i] := e_ctcode[i];

        -- Quota, read under the counter's lock.
        ci := e_counter[i];
        IF ci IS NOT NULL AND c_used[ci] + p_quantities[i] > e_limit[i] THEN
            o_outcome[i] := 'quota_exceeded'; o_limit[i] := e_limit[i]; o_used[i] := c_used[ci];
            CONTINUE;
        END IF;

        -- Funds, then the burn-down draws (and overage where the plan allows it).
        wi := e_wallet[i];
        IF wi IS NULL THEN
            IF v_cost > 0 THEN
                o_outcome[i] := 'insufficient_credits'; o_required[i] := v_cost;
                o_avail_err[i] := 0; CONTINUE;
            END IF;
            o_balance[i] := 0; o_available[i] := 0;
        ELSE
            v_available := w_balance[wi] - w_held[wi];
            IF v_cost > v_available + e_overdraft[i] THEN
                o_outcome[i] := 'insufficient_credits'; o_required[i] := v_cost;
                o_avail_err[i] := v_available; CONTINUE;
            END IF;
        END IF;

        v_event := nextval(v_seq);
        IF wi IS NOT NULL AND v_cost > 0 THEN
            v_left := v_cost;
            gi := w_next[wi];
            WHILE v_left > 0 AND gi IS NOT NULL AND gi <= w_last[wi] LOOP
                IF g_left[gi] > 0 THEN
                    v_take := LEAST(g_left[gi], v_left);
                    g_left[gi] := g_left[gi] - v_take;
                    w_balance[wi] := w_balance[wi] - v_take;
                    v_left := v_left - v_take;
                    l_n := l_n + 1;
                    l_account[l_n] := w_account[wi]; l_wallet[l_n] := w_id[wi];
                    l_kind[l_n] := 'consume'; l_amount[l_n] := -v_take;
                    l_balance[l_n] := w_balance[wi]; l_grant[l_n] := g_id[gi];
                    l_event[l_n] := v_event; l_reason[l_n] := '';
                END IF;
                IF g_left[gi] = 0 THEN gi := gi + 1; END IF;
            END LOOP;
            w_next[wi] := gi;
            IF v_left > 0 THEN
                w_debt[wi] := w_debt[wi] + v_left;
                w_balance[wi] := w_balance[wi] - v_left;
                l_n := l_n + 1;
                l_account[l_n] := w_account[wi]; l_wallet[l_n] := w_id[wi];
                l_kind[l_n] := 'overage'; l_amount[l_n] := -v_left;
                l_balance[l_n] := w_balance[wi]; l_grant[l_n] := NULL;
                l_event[l_n] := v_event; l_reason[l_n] := '';
            END IF;
            w_touched[wi] := true;
        END IF;
        IF wi IS NOT NULL THEN
            o_balance[i] := w_balance[wi]; o_available[i] := w_balance[wi] - w_held[wi];
        END IF;
        IF ci IS NOT NULL THEN c_used[ci] := c_used[ci] + p_quantities[i]; END IF;

        o_outcome[i] := 'created'; o_event[i] := v_event; o_credits[i] := v_cost;
        o_occurred[i] := COALESCE(p_occurred_at[i], p_now); o_created[i] := p_now;
        IF p_keys[i] IS NOT NULL THEN k_owner[i] := i; END IF;
        u_n := u_n + 1;
        u_id[u_n] := v_event; u_account[u_n] := p_account_ids[i];
        u_feature[u_n] := e_feature[i]; u_ct[u_n] := e_ct[i];
        u_quantity[u_n] := p_quantities[i]; u_cpu[u_n] := e_cpu[i]; u_credits[u_n] := v_cost;
        u_balance[u_n] := o_balance[i]; u_available[u_n] := o_available[i];
        u_key[u_n] := p_keys[i];
        u_fingerprint[u_n] := CASE WHEN p_keys[i] IS NULL THEN '' ELSE p_fingerprints[i] END;
        u_metadata[u_n] := COALESCE(p_metadata[i], '{}'::jsonb);
        u_occurred[u_n] := o_occurred[i];
    END LOOP;

    -- 3. Write, one statement per table. Nothing charged: write nothing at all (not even the
    --    lazy expiry, which the job or the next consume writes), and drop wallets created
    --    for nothing.
    IF u_n > 0 THEN
        INSERT INTO usage_usageevent (id, account_id, feature_id, credit_type_id, quantity,
            credits_per_unit, credits, balance_after, available_after, idempotency_key,
            fingerprint, metadata, occurred_at, created_at)
        SELECT t.*, p_now FROM unnest(u_id, u_account, u_feature, u_ct, u_quantity, u_cpu,
            u_credits, u_balance, u_available, u_key, u_fingerprint, u_metadata, u_occurred)
            AS t;

        IF l_n > 0 THEN
            -- In order: entry ids follow the balance_after chain.
            INSERT INTO wallets_ledgerentry (account_id, wallet_id, kind, amount,
                balance_after, held_change, grant_id, usage_event_id, reason, created_at)
            SELECT t.a, t.w, t.k, t.am, t.b, 0, t.g, t.e, t.r, p_now
            FROM unnest(l_account, l_wallet, l_kind, l_amount, l_balance, l_grant, l_event,
                        l_reason) WITH ORDINALITY AS t(a, w, k, am, b, g, e, r, ord)
            ORDER BY t.ord;

            UPDATE wallets_creditgrant g SET remaining = t.left_now
            FROM unnest(g_id, g_left, g_orig) AS t(id, left_now, left_before)
            WHERE g.id = t.id AND t.left_now <> t.left_before;

            UPDATE wallets_wallet w SET balance = t.balance, debt = t.debt, updated_at = p_now
            FROM unnest(w_id, w_balance, w_debt, w_touched) AS t(id, balance, debt, touched)
            WHERE w.id = t.id AND t.touched;
        END IF;

        IF c_id IS NOT NULL THEN
            UPDATE usage_usagecounter c SET used = t.used_now
            FROM unnest(c_id, c_used, c_orig) AS t(id, used_now, used_before)
            WHERE c.id = t.id AND t.used_now <> t.used_before;
        END IF;
    END IF;
    IF w_created IS NOT NULL THEN
        DELETE FROM wallets_wallet x USING unnest(w_id, w_touched) AS t(id, touched)
        WHERE x.id = t.id AND x.id = ANY (w_created) AND NOT t.touched;
    END IF;

    RETURN QUERY SELECT * FROM unnest(o_outcome, o_event, o_ctcode, o_cpu, o_credits,
        o_balance, o_available, o_occurred, o_created, o_required, o_avail_err, o_limit,
        o_used);
END
$$;
"""

OLD_SINGLE = """
DROP FUNCTION creditdesk_consume(bigint, text, numeric, text, text, jsonb, timestamptz,
                                 timestamptz);
"""

SINGLE = r"""
CREATE FUNCTION creditdesk_consume(
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
    ev record; f record; w record;
    v_grant_ids bigint[]; v_grant_left numeric[];
    v_enabled boolean; v_cpu numeric; v_limit numeric; v_period timestamptz;
    v_overdraft numeric := 0; v_cost numeric; v_expired numeric := 0; v_used numeric;
    v_available numeric; v_balance numeric; v_debt numeric; v_left numeric; v_take numeric;
    v_event_id bigint; v_wallet_created boolean := false;
BEGIN
    -- 1. A repeat of an idempotency key answers with the first result, whatever happened since.
    IF p_key IS NOT NULL THEN
        SELECT e.*, ct.code::text AS ctcode INTO ev
        FROM usage_usageevent e
        JOIN catalog_credittype ct ON ct.id = e.credit_type_id
        WHERE e.account_id = p_account_id AND e.idempotency_key = p_key;
        IF FOUND THEN
            IF ev.fingerprint <> p_fingerprint THEN
                RETURN QUERY SELECT 'idempotency_key_reused', NULL::bigint, NULL::text,
                    NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
                    NULL::timestamptz, NULL::timestamptz, NULL::numeric, NULL::numeric,
                    NULL::numeric, NULL::numeric;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'replayed', ev.id, ev.ctcode, ev.credits_per_unit, ev.credits,
                ev.balance_after, ev.available_after, ev.occurred_at, ev.created_at,
                NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
            RETURN;
        END IF;
    END IF;

    -- 2. Entitlement: account status, feature, plan terms (as apps/usage/selectors.py), in
    --    one statement.
    SELECT a.status, ft.id, ft.kind, ft.credit_type_id, ft.credits_per_unit,
           ct.code::text AS ctcode, sub.plan_id, sub.current_period_start, pl.overage_policy,
           pl.overage_limit, x.id AS pf_id, x.enabled AS pf_enabled,
           x.credits_per_unit AS pf_cpu, x.limit_per_period AS pf_limit
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
        outcome := 'account_suspended';
    ELSIF f.id IS NULL THEN
        outcome := 'feature_not_found';
    ELSIF f.kind <> 'metered' THEN
        outcome := 'feature_is_boolean';
    END IF;
    IF outcome IS NULL THEN
        IF f.plan_id IS NOT NULL THEN
            v_enabled := f.pf_id IS NOT NULL AND f.pf_enabled;
            v_cpu := COALESCE(f.pf_cpu, f.credits_per_unit);
            v_limit := f.pf_limit;
            v_period := f.current_period_start;
            IF f.overage_policy = 'allow' THEN v_overdraft := COALESCE(f.overage_limit, 0); END IF;
        ELSE
            v_enabled := true;
            v_cpu := f.credits_per_unit;
        END IF;
        IF NOT v_enabled THEN outcome := 'feature_not_enabled'; END IF;
    END IF;
    IF outcome IS NULL THEN
        -- Cost: exact to 6 places and storable, never rounded (Python words the error).
        v_cost := p_quantity * v_cpu;
        IF v_cost <> round(v_cost, 6) OR v_cost >= 1e18 THEN outcome := 'invalid_cost'; END IF;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, NULL::bigint, NULL::text, v_cpu, NULL::numeric,
            NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz, NULL::numeric,
            NULL::numeric, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    v_cost := round(v_cost, 6);

    -- 3. Lock the wallet; every writer of its balance and grants takes this lock first. An
    --    overdraft plan may charge an account without a wallet: create it (dropped if unused).
    SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
    WHERE x.account_id = p_account_id AND x.credit_type_id = f.credit_type_id FOR UPDATE;
    IF NOT FOUND AND v_overdraft > 0 THEN
        INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, created_at,
                                    updated_at)
        VALUES (p_account_id, f.credit_type_id, 0, 0, 0, p_now, p_now) ON CONFLICT DO NOTHING;
        v_wallet_created := FOUND;
        SELECT x.id, x.balance, x.held, x.debt INTO w FROM wallets_wallet x
        WHERE x.account_id = p_account_id AND x.credit_type_id = f.credit_type_id FOR UPDATE;
    END IF;

    -- 4. Quota, read under the counter's lock, taken after the wallet's (the same order
    --    everywhere): a feature that costs nothing has no wallet lock to serialise its quota.
    IF v_limit IS NOT NULL AND v_period IS NOT NULL THEN
        INSERT INTO usage_usagecounter (account_id, feature_id, period_start, used)
        VALUES (p_account_id, f.id, v_period, 0)
        ON CONFLICT (account_id, feature_id, period_start) DO NOTHING;
        SELECT c.used INTO v_used FROM usage_usagecounter c
        WHERE c.account_id = p_account_id AND c.feature_id = f.id AND c.period_start = v_period
        FOR UPDATE;
        IF v_used + p_quantity > v_limit THEN
            outcome := 'quota_exceeded';
            RETURN QUERY SELECT outcome, NULL::bigint, f.ctcode, v_cpu, NULL::numeric,
                NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz,
                NULL::numeric, NULL::numeric, v_limit, v_used;
            IF v_wallet_created THEN DELETE FROM wallets_wallet WHERE id = w.id; END IF;
            RETURN;
        END IF;
    END IF;

    -- 5. Funds: expired-but-unprocessed grants are not spendable.
    IF w.id IS NULL THEN
        IF v_cost > 0 THEN
            outcome := 'insufficient_credits';
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
            outcome := 'insufficient_credits';
        END IF;
        v_balance := w.balance - v_expired - v_cost;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, NULL::bigint, f.ctcode, v_cpu, NULL::numeric,
            NULL::numeric, NULL::numeric, NULL::timestamptz, NULL::timestamptz, v_cost,
            v_available, NULL::numeric, NULL::numeric;
        IF v_wallet_created THEN DELETE FROM wallets_wallet WHERE id = w.id; END IF;
        RETURN;
    END IF;
    IF w.id IS NOT NULL THEN
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
        ELSIF v_wallet_created THEN
            DELETE FROM wallets_wallet WHERE id = w.id;
        END IF;
    END IF;

    IF v_limit IS NOT NULL AND v_period IS NOT NULL THEN
        UPDATE usage_usagecounter SET used = used + p_quantity
        WHERE account_id = p_account_id AND feature_id = f.id AND period_start = v_period;
    END IF;

    RETURN QUERY SELECT 'created', v_event_id, f.ctcode, v_cpu, v_cost, v_balance,
        v_balance - COALESCE(w.held, 0), COALESCE(p_occurred_at, p_now), p_now,
        NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric;
END
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS creditdesk_consume_batch(bigint[], text[], numeric[], text[], text[],
                                                jsonb[], timestamptz[], timestamptz);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(OLD_SINGLE)
            cursor.execute(SINGLE)
            cursor.execute(CONSUME_BATCH)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        previous = import_module("apps.usage.migrations.0002_consume_function")
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)
            cursor.execute(OLD_SINGLE)
            cursor.execute(previous.CONSUME)


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_consume_function")]

    operations = [migrations.RunPython(forward, backward)]
