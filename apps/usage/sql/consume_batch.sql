-- Consume many events in one call, set-based (a single consume calls consume.sql). Applies
-- exactly the rules of the portable path in apps/usage/services.py (the same tests run against
-- both), in three phases:
--
-- 1. read, in a handful of statements for the whole batch: each event's terms (the terms
--    function) and any earlier event with its idempotency key; then lock the wallets it needs
--    in id order (creating the ones an overdraft plan needs), read their grants, lock the
--    quota counters it needs;
-- 2. decide each event in order, in memory (arrays), exactly as a single consume would;
-- 3. write with one statement per table: usage events, ledger entries, grants, wallets,
--    counters.
--
-- A wallet holding a grant past its expiry raises {{closing_sqlstate}} before anything is
-- written: the Python ledger engine closes such grants (rollover, expiry, events), so the
-- caller runs the batch on the portable path.
--
-- Rendered by apps/usage/sql from the Python constants; installed by an InstallSQLFunction
-- migration (docs/ledger.md, "Where each rule lives").
CREATE OR REPLACE FUNCTION {{name}}(
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
    g_id bigint[]; g_left numeric[]; g_orig numeric[]; g_wallet int[]; g_closing boolean;
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

    -- 1a. Terms of every event (the terms function, inlined) and earlier events with its
    --     key. Aggregated from rows sorted by event (one sort, not one per array); the loop
    --     below checks that order.
    SELECT array_agg(s.ord), array_agg(s.account_status), array_agg(s.feature_id),
           array_agg(s.feature_kind), array_agg(s.credit_type_id), array_agg(s.credit_type_code),
           array_agg(s.enabled), array_agg(s.credits_per_unit), array_agg(s.limit_per_period),
           array_agg(s.period_start), array_agg(s.overdraft_limit), array_agg(s.prev),
           array_agg(s.pr_id), array_agg(s.pr_fingerprint), array_agg(s.pr_ctcode),
           array_agg(s.pr_cpu), array_agg(s.pr_credits), array_agg(s.pr_balance),
           array_agg(s.pr_available), array_agg(s.pr_occurred), array_agg(s.pr_created)
    INTO e_ord, e_status, e_feature, e_kind, e_ct, e_ctcode, e_enabled, e_cpu, e_limit,
         e_period, e_overdraft, e_prev, pr_id, pr_fingerprint, pr_ctcode, pr_cpu, pr_credits,
         pr_balance, pr_available, pr_occurred, pr_created
    FROM (
        SELECT t.ord::int AS ord, t.account_status, t.feature_id, t.feature_kind,
               t.credit_type_id, t.credit_type_code, t.enabled, t.credits_per_unit,
               t.limit_per_period, t.period_start, t.overdraft_limit,
               r.prev::int AS prev, pr.id AS pr_id, pr.fingerprint::text AS pr_fingerprint,
               pct.code::text AS pr_ctcode, pr.credits_per_unit AS pr_cpu,
               pr.credits AS pr_credits, pr.balance_after AS pr_balance,
               pr.available_after AS pr_available, pr.occurred_at AS pr_occurred,
               pr.created_at AS pr_created
        FROM {{terms_function}}(p_account_ids, p_features, p_now) t
        JOIN (
            SELECT u.ord, u.key, CASE WHEN u.key IS NOT NULL THEN
                       lag(u.ord) OVER (PARTITION BY u.account_id, u.key ORDER BY u.ord) END
                       AS prev
            FROM unnest(p_account_ids, p_keys) WITH ORDINALITY AS u(account_id, key, ord)
        ) r ON r.ord = t.ord
        LEFT JOIN usage_usageevent pr
            ON r.key IS NOT NULL AND pr.account_id = t.account_id AND pr.idempotency_key = r.key
        LEFT JOIN catalog_credittype pct ON pct.id = pr.credit_type_id
        ORDER BY t.ord
    ) s;

    FOR i IN 1 .. n LOOP
        IF e_ord[i] <> i THEN RAISE EXCEPTION 'terms out of event order'; END IF;
        e_usable[i] := e_status[i] = {{account_active}} AND e_kind[i] = {{feature_metered}}
                       AND e_enabled[i];
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
        -- committed. Each wallet's grants in burn-down order.
        SELECT array_agg(s.id ORDER BY s.rn), array_agg(s.remaining ORDER BY s.rn),
               array_agg(s.wi ORDER BY s.rn), bool_or(s.expires_at <= p_now)
        INTO g_id, g_left, g_wallet, g_closing
        FROM (
            SELECT g.id, g.remaining, w.wi, g.expires_at,
                   row_number() OVER (ORDER BY w.wi, {{burn_down_order}}) AS rn
            FROM unnest(w_id) WITH ORDINALITY AS w(id, wi)
            JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0
        ) s;
        IF g_closing THEN
            RAISE EXCEPTION 'a grant is past its expiry' USING ERRCODE = {{closing_sqlstate}};
        END IF;
        g_orig := g_left;
        FOR k IN 1 .. COALESCE(array_length(g_id, 1), 0) LOOP
            wi := g_wallet[k];
            IF w_next[wi] IS NULL THEN w_next[wi] := k; END IF;
            w_last[wi] := k;
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
                    o_outcome[i] := {{idempotency_key_reused}};
                ELSE
                    o_outcome[i] := {{replayed}}; o_event[i] := pr_id[i];
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
                    o_outcome[i] := {{idempotency_key_reused}};
                ELSE
                    o_outcome[i] := {{replayed}}; o_event[i] := o_event[owner];
                    o_ctcode[i] := o_ctcode[owner]; o_cpu[i] := o_cpu[owner];
                    o_credits[i] := o_credits[owner]; o_balance[i] := o_balance[owner];
                    o_available[i] := o_available[owner]; o_occurred[i] := o_occurred[owner];
                    o_created[i] := o_created[owner];
                END IF;
                CONTINUE;
            END IF;
        END IF;

        -- Entitlement.
        IF e_status[i] IS DISTINCT FROM {{account_active}} THEN
            o_outcome[i] := {{account_suspended}}; CONTINUE;
        END IF;
        IF e_feature[i] IS NULL THEN o_outcome[i] := {{feature_not_found}}; CONTINUE; END IF;
        IF NOT e_enabled[i] THEN o_outcome[i] := {{feature_not_enabled}}; CONTINUE; END IF;
        IF e_kind[i] <> {{feature_metered}} THEN
            o_outcome[i] := {{feature_is_boolean}}; CONTINUE;
        END IF;

        -- Cost: exact to a credit's places and storable, never rounded (Python words the
        -- error).
        v_cost := p_quantities[i] * e_cpu[i];
        o_cpu[i] := e_cpu[i];
        IF v_cost <> round(v_cost, {{credit_places}}) OR v_cost >= {{credits_limit}} THEN
            o_outcome[i] := {{invalid_cost}}; CONTINUE;
        END IF;
        v_cost := round(v_cost, {{credit_places}});
        o_ctcode[i] := e_ctcode[i];

        -- Quota, read under the counter's lock.
        ci := e_counter[i];
        IF ci IS NOT NULL AND c_used[ci] + p_quantities[i] > e_limit[i] THEN
            o_outcome[i] := {{quota_exceeded}}; o_limit[i] := e_limit[i]; o_used[i] := c_used[ci];
            CONTINUE;
        END IF;

        -- Funds, then the burn-down draws (and overage where the plan allows it).
        wi := e_wallet[i];
        IF wi IS NULL THEN
            IF v_cost > 0 THEN
                o_outcome[i] := {{insufficient_credits}}; o_required[i] := v_cost;
                o_avail_err[i] := 0; CONTINUE;
            END IF;
            o_balance[i] := 0; o_available[i] := 0;
        ELSE
            v_available := w_balance[wi] - w_held[wi];
            IF v_cost > v_available + e_overdraft[i] THEN
                o_outcome[i] := {{insufficient_credits}}; o_required[i] := v_cost;
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
                    l_kind[l_n] := {{entry_consume}}; l_amount[l_n] := -v_take;
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
                l_kind[l_n] := {{entry_overage}}; l_amount[l_n] := -v_left;
                l_balance[l_n] := w_balance[wi]; l_grant[l_n] := NULL;
                l_event[l_n] := v_event; l_reason[l_n] := '';
            END IF;
            w_touched[wi] := true;
        END IF;
        IF wi IS NOT NULL THEN
            o_balance[i] := w_balance[wi]; o_available[i] := w_balance[wi] - w_held[wi];
        END IF;
        IF ci IS NOT NULL THEN c_used[ci] := c_used[ci] + p_quantities[i]; END IF;

        o_outcome[i] := {{created}}; o_event[i] := v_event; o_credits[i] := v_cost;
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

    -- 3. Write, one statement per table. Nothing charged: write nothing at all, and drop
    --    wallets created for nothing.
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
