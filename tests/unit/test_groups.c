#include "group/groups.h"
#include "test.h"

static ck_gproto_t P(const char *name) { return (ck_gproto_t){(char *)name, (uint8_t *)"m", 1}; }

CK_TEST(groups_rebalance_cycle)
{
    ck_groups_t gs = {0};
    ck_group_t *g = ck_groups_get(&gs, ck_slice_cstr("g"));
    CHECK(g && g->state == CK_GS_EMPTY);
    ck_gproto_t rr[2] = {P("range"), P("roundrobin")};
    ck_gmember_t *a = ck_group_upsert(g, "a", CK_SLICE_NULL, ck_slice_cstr("c"), "/h", 10000, 20000, rr, 2, 0);
    a->joined = true;
    ck_group_prepare(g, 0);
    CHECK_EQ(g->state, CK_GS_PREPARING);
    CHECK_EQ(g->rebalance_deadline, 20000);
    CHECK(!ck_group_try_complete(g, 1)); /* a new group waits for more first members */
    CHECK(ck_group_try_complete(g, CK_GROUP_INITIAL_DELAY_MS));
    CHECK_EQ(g->state, CK_GS_COMPLETING);
    CHECK_EQ(g->generation, 1);
    CHECK_STREQ(g->leader, "a");
    CHECK_STREQ(g->protocol, "range");
    const char *ids[] = {"a"};
    ck_slice_t as[] = {ck_slice_cstr("A")};
    CHECK_EQ(ck_group_assign(g, ids, as, 1), 0);
    CHECK_EQ(g->state, CK_GS_STABLE);
    /* b joins, preferring roundrobin and not supporting range: roundrobin is chosen */
    ck_gproto_t only_rr[1] = {P("roundrobin")};
    CHECK(ck_group_protocols_compatible(g, only_rr, 1));
    ck_gproto_t sticky[1] = {P("sticky")};
    CHECK(!ck_group_protocols_compatible(g, sticky, 1));
    ck_gmember_t *b = ck_group_upsert(g, "b", CK_SLICE_NULL, ck_slice_cstr("c"), "/h", 10000, 20000, only_rr, 1, 100);
    b->joined = true;
    ck_group_prepare(g, 100);
    CHECK(!ck_group_try_complete(g, 200)); /* a has not rejoined yet */
    a->joined = true;
    CHECK(ck_group_try_complete(g, 300));
    CHECK_EQ(g->generation, 2);
    CHECK_STREQ(g->protocol, "roundrobin");
    CHECK_STREQ(g->leader, "a"); /* the leader stays */
    CHECK(a->assignment == NULL); /* assignments belong to a generation */
    ck_group_assign(g, ids, as, 1);
    /* a stops heartbeating: its session ends, b alone rebalances */
    b->deadline = 100000;
    CHECK(ck_group_expire(g, 11000 + 300));
    CHECK_EQ(g->state, CK_GS_PREPARING);
    CHECK(ck_group_member(g, ck_slice_cstr("a")) == NULL);
    b->joined = true;
    CHECK(ck_group_try_complete(g, 11400));
    CHECK_STREQ(g->leader, "b");
    CHECK_EQ(g->generation, 3);
    /* a member that never rejoins is dropped at the rebalance deadline */
    ck_gmember_t *c = ck_group_upsert(g, "c", CK_SLICE_NULL, ck_slice_cstr("c"), "/h", 10000, 5000, only_rr, 1, 11500);
    c->joined = true;
    ck_group_prepare(g, 11500);
    CHECK(!ck_group_try_complete(g, 12000));
    CHECK(ck_group_try_complete(g, 11500 + 20001));
    CHECK(ck_group_member(g, ck_slice_cstr("b")) == NULL);
    CHECK_EQ(ck_group_count(g), 1);
    ck_groups_free(&gs);
}

CK_TEST(groups_member_ids_unique)
{
    ck_groups_t gs = {0};
    char *x = ck_groups_new_member_id(&gs, ck_slice_cstr("client"));
    char *y = ck_groups_new_member_id(&gs, ck_slice_cstr("client"));
    CHECK(strncmp(x, "client-", 7) == 0);
    CHECK(strcmp(x, y) != 0);
    free(x);
    free(y);
}
