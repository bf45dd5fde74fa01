/* Consumer-group state machine (docs/GROUPS.md). */
#include "group/groups.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/logging.h"

const char *ck_group_state_name(int s)
{
    switch (s) {
    case CK_GS_EMPTY: return "Empty";
    case CK_GS_PREPARING: return "PreparingRebalance";
    case CK_GS_COMPLETING: return "CompletingRebalance";
    case CK_GS_STABLE: return "Stable";
    default: return "Dead";
    }
}

static char *dup_slice(ck_slice_t s)
{
    return ck_strndup(s.len > 0 ? (const char *)s.ptr : "", s.len > 0 ? (size_t)s.len : 0);
}

ck_group_t *ck_groups_find(ck_groups_t *gs, ck_slice_t id)
{
    for (ck_group_t *g = gs->list; g; g = g->next)
        if (ck_slice_eq_cstr(id, g->id))
            return g;
    return NULL;
}

ck_group_t *ck_groups_get(ck_groups_t *gs, ck_slice_t id)
{
    ck_group_t *g = ck_groups_find(gs, id);
    if (g)
        return g;
    g = ck_calloc(1, sizeof(*g));
    if (!g || !(g->id = dup_slice(id))) {
        ck_free(g);
        return NULL;
    }
    g->state = CK_GS_EMPTY;
    g->next = gs->list;
    gs->list = g;
    return g;
}

static void member_free(ck_gmember_t *m)
{
    ck_free(m->id);
    ck_free(m->instance_id);
    ck_free(m->client_id);
    ck_free(m->client_host);
    for (int i = 0; i < m->nprotos; i++) {
        ck_free(m->protos[i].name);
        ck_free(m->protos[i].meta);
    }
    ck_free(m->protos);
    ck_free(m->assignment);
    ck_free(m);
}

static void group_free(ck_group_t *g)
{
    while (g->members) {
        ck_gmember_t *m = g->members;
        g->members = m->next;
        member_free(m);
    }
    ck_free(g->id);
    ck_free(g->protocol_type);
    ck_free(g->protocol);
    ck_free(g->leader);
    ck_free(g);
}

void ck_groups_remove(ck_groups_t *gs, ck_group_t *g)
{
    for (ck_group_t **pp = &gs->list; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            group_free(g);
            return;
        }
}

void ck_groups_free(ck_groups_t *gs)
{
    while (gs->list) {
        ck_group_t *g = gs->list;
        gs->list = g->next;
        group_free(g);
    }
}

ck_gmember_t *ck_group_member(ck_group_t *g, ck_slice_t id)
{
    for (ck_gmember_t *m = g->members; m; m = m->next)
        if (ck_slice_eq_cstr(id, m->id))
            return m;
    return NULL;
}

ck_gmember_t *ck_group_member_by_instance(ck_group_t *g, ck_slice_t iid)
{
    if (iid.len < 0)
        return NULL;
    for (ck_gmember_t *m = g->members; m; m = m->next)
        if (m->instance_id && ck_slice_eq_cstr(iid, m->instance_id))
            return m;
    return NULL;
}

int ck_group_count(const ck_group_t *g)
{
    int n = 0;
    for (const ck_gmember_t *m = g->members; m; m = m->next)
        n += !m->pending;
    return n;
}

char *ck_groups_new_member_id(ck_groups_t *gs, ck_slice_t client_id)
{
    char buf[400];
    unsigned long long n = ++gs->next_id;
    uint64_t x = (uint64_t)n * 0x9E3779B97F4A7C15ull;
    snprintf(buf, sizeof(buf), "%.*s-%08llx-%04llx-%012llx", client_id.len > 0 ? (client_id.len > 200 ? 200 : client_id.len) : 8,
             client_id.len > 0 ? (const char *)client_id.ptr : "consumer", (unsigned long long)(x >> 32),
             (unsigned long long)(x & 0xffff), n);
    return ck_strdup(buf);
}

ck_gmember_t *ck_group_upsert(ck_group_t *g, const char *id, ck_slice_t instance_id, ck_slice_t client_id,
                              const char *client_host, int32_t session_ms, int32_t rebalance_ms,
                              const ck_gproto_t *protos, int nprotos, int64_t now)
{
    ck_gmember_t *m = ck_group_member(g, ck_slice_cstr(id));
    bool fresh = !m;
    if (fresh) {
        m = ck_calloc(1, sizeof(*m));
        if (!m || !(m->id = ck_strdup(id))) {
            ck_free(m);
            return NULL;
        }
    }
    ck_gproto_t *np = ck_calloc((size_t)(nprotos ? nprotos : 1), sizeof(*np));
    if (!np) {
        if (fresh)
            member_free(m);
        return NULL;
    }
    for (int i = 0; i < nprotos; i++) {
        np[i].name = ck_strdup(protos[i].name);
        np[i].meta = ck_malloc((size_t)(protos[i].len > 0 ? protos[i].len : 1));
        np[i].len = protos[i].len > 0 ? protos[i].len : 0;
        if (np[i].meta && np[i].len)
            memcpy(np[i].meta, protos[i].meta, (size_t)np[i].len);
    }
    for (int i = 0; i < m->nprotos; i++) {
        ck_free(m->protos[i].name);
        ck_free(m->protos[i].meta);
    }
    ck_free(m->protos);
    m->protos = np;
    m->nprotos = nprotos;
    if (instance_id.len >= 0 && !m->instance_id)
        m->instance_id = dup_slice(instance_id);
    if (!m->client_id)
        m->client_id = dup_slice(client_id);
    if (!m->client_host)
        m->client_host = ck_strdup(client_host ? client_host : "");
    m->session_timeout_ms = session_ms;
    m->rebalance_timeout_ms = rebalance_ms > 0 ? rebalance_ms : session_ms;
    m->deadline = now + session_ms;
    m->pending = false;
    if (fresh) {
        /* keep join order: the first member to join leads */
        ck_gmember_t **pp = &g->members;
        while (*pp)
            pp = &(*pp)->next;
        *pp = m;
    }
    return m;
}

void ck_group_remove_member(ck_group_t *g, ck_gmember_t *m)
{
    for (ck_gmember_t **pp = &g->members; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            if (g->leader && !strcmp(g->leader, m->id)) {
                ck_free(g->leader);
                g->leader = NULL;
            }
            member_free(m);
            return;
        }
}

static bool member_supports(const ck_gmember_t *m, const char *name)
{
    for (int i = 0; i < m->nprotos; i++)
        if (!strcmp(m->protos[i].name, name))
            return true;
    return false;
}

bool ck_group_protocols_compatible(const ck_group_t *g, const ck_gproto_t *protos, int n)
{
    if (ck_group_count(g) == 0)
        return true;
    for (int i = 0; i < n; i++) {
        bool all = true;
        for (const ck_gmember_t *m = g->members; m && all; m = m->next)
            all = m->pending || member_supports(m, protos[i].name);
        if (all)
            return true;
    }
    return false;
}

void ck_group_prepare(ck_group_t *g, int64_t now)
{
    if (g->state == CK_GS_EMPTY) {
        g->initial_until = now + CK_GROUP_INITIAL_DELAY_MS;
        g->initial_cap = now + 10 * CK_GROUP_INITIAL_DELAY_MS;
    } else if (g->state == CK_GS_PREPARING && g->initial_until > 0) {
        /* another first member: wait a little longer, within bounds */
        int64_t until = now + CK_GROUP_INITIAL_DELAY_MS;
        g->initial_until = until < g->initial_cap ? until : g->initial_cap;
    }
    if (g->state != CK_GS_PREPARING) {
        int64_t longest = 0;
        for (ck_gmember_t *m = g->members; m; m = m->next)
            if (!m->pending && m->rebalance_timeout_ms > longest)
                longest = m->rebalance_timeout_ms;
        g->rebalance_deadline = now + longest;
        g->state = CK_GS_PREPARING;
    }
}

/* The protocol every member supports, chosen by the members' first preferences. */
static const char *choose_protocol(const ck_group_t *g)
{
    const ck_gmember_t *first = NULL;
    for (const ck_gmember_t *m = g->members; m; m = m->next)
        if (!m->pending) {
            first = m;
            break;
        }
    if (!first)
        return NULL;
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; i < first->nprotos; i++) {
        const char *cand = first->protos[i].name;
        bool all = true;
        for (const ck_gmember_t *m = g->members; m && all; m = m->next)
            all = m->pending || member_supports(m, cand);
        if (!all)
            continue;
        int votes = 0;
        for (const ck_gmember_t *m = g->members; m; m = m->next) {
            if (m->pending)
                continue;
            /* a member votes for its most preferred protocol that everyone supports */
            for (int k = 0; k < m->nprotos; k++) {
                bool everyone = true;
                for (const ck_gmember_t *o = g->members; o && everyone; o = o->next)
                    everyone = o->pending || member_supports(o, m->protos[k].name);
                if (everyone) {
                    votes += !strcmp(m->protos[k].name, cand);
                    break;
                }
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best;
}

bool ck_group_try_complete(ck_group_t *g, int64_t now)
{
    if (g->state != CK_GS_PREPARING)
        return false;
    bool all = true;
    for (ck_gmember_t *m = g->members; m; m = m->next)
        if (!m->pending && !m->joined)
            all = false;
    if (!all && now < g->rebalance_deadline)
        return false;
    if (now < g->initial_until && now < g->rebalance_deadline)
        return false; /* a new group: more members may be on their way */
    g->initial_until = 0;
    /* members that did not rejoin in time leave the group */
    ck_gmember_t *m = g->members;
    while (m) {
        ck_gmember_t *n = m->next;
        if (!m->pending && !m->joined) {
            CK_INFO("group", "group %s: member %s did not rejoin in time, removed", g->id, m->id);
            ck_group_remove_member(g, m);
        }
        m = n;
    }
    if (ck_group_count(g) == 0) {
        g->state = CK_GS_EMPTY;
        g->generation++;
        ck_free(g->protocol);
        g->protocol = NULL;
        return true;
    }
    g->generation++;
    const char *p = choose_protocol(g);
    ck_free(g->protocol);
    g->protocol = ck_strdup(p ? p : "");
    if (!g->leader || !ck_group_member(g, ck_slice_cstr(g->leader))) {
        for (m = g->members; m; m = m->next)
            if (!m->pending) {
                ck_free(g->leader);
                g->leader = ck_strdup(m->id);
                break;
            }
    }
    for (m = g->members; m; m = m->next) {
        ck_free(m->assignment);
        m->assignment = NULL;
        m->alen = 0;
        m->joined = false; /* their JoinGroup replies are due now (generation moved) */
        m->deadline = now + m->session_timeout_ms; /* the session restarts with the generation */
    }
    g->state = CK_GS_COMPLETING;
    CK_INFO("group", "group %s: generation %d with %d members, protocol %s, leader %s", g->id,
            g->generation, ck_group_count(g), g->protocol, g->leader);
    return true;
}

int ck_group_assign(ck_group_t *g, const char *const *ids, const ck_slice_t *as, int n)
{
    for (int i = 0; i < n; i++) {
        ck_gmember_t *m = ck_group_member(g, ck_slice_cstr(ids[i]));
        if (!m)
            continue;
        uint8_t *a = ck_malloc((size_t)(as[i].len > 0 ? as[i].len : 1));
        if (!a)
            return CK_ENOMEM;
        if (as[i].len > 0)
            memcpy(a, as[i].ptr, (size_t)as[i].len);
        ck_free(m->assignment);
        m->assignment = a;
        m->alen = as[i].len > 0 ? as[i].len : 0;
    }
    g->state = CK_GS_STABLE;
    return 0;
}

bool ck_group_expire(ck_group_t *g, int64_t now)
{
    bool changed = false;
    ck_gmember_t *m = g->members;
    while (m) {
        ck_gmember_t *n = m->next;
        /* a member waiting in JoinGroup is alive until the rebalance ends */
        if (now >= m->deadline && !(g->state == CK_GS_PREPARING && m->joined)) {
            if (!m->pending)
                CK_INFO("group", "group %s: session of member %s expired", g->id, m->id);
            bool real = !m->pending;
            ck_group_remove_member(g, m);
            if (real) {
                changed = true;
                if (ck_group_count(g) > 0)
                    ck_group_prepare(g, now);
            }
        }
        m = n;
    }
    if (changed && ck_group_count(g) == 0 && g->state != CK_GS_PREPARING) {
        g->state = CK_GS_EMPTY;
        g->generation++;
    }
    return changed;
}

ck_slice_t ck_group_member_meta(const ck_group_t *g, const ck_gmember_t *m)
{
    for (int i = 0; g->protocol && i < m->nprotos; i++)
        if (!strcmp(m->protos[i].name, g->protocol))
            return ck_slice(m->protos[i].meta, (size_t)m->protos[i].len);
    return ck_slice("", 0);
}
