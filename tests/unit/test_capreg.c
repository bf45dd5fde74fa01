/* The capabilities' registry of open topics: references follow add, get, all, remove
 * and pop; names are copies; readers on several threads against an owner that unlists
 * and frees (the last reference frees, once). */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/alloc.h"
#include "index/capreg.h"
#include "test.h"

typedef struct obj {
    ck_capreg_node_t node;
    char name[16];
} obj_t;

static atomic_int freed;

static void obj_unref(obj_t *o)
{
    if (ck_capreg_unref(&o->node)) {
        atomic_fetch_add(&freed, 1);
        ck_free(o);
    }
}

static obj_t *obj_new(const char *name)
{
    obj_t *o = ck_calloc(1, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", name);
    ck_capreg_node_init(&o->node, o->name);
    return o;
}

static obj_t *obj_of(ck_capreg_node_t *n)
{
    return n ? (obj_t *)((char *)n - offsetof(obj_t, node)) : NULL;
}

CK_TEST(capreg_references_and_names)
{
    atomic_store(&freed, 0);
    ck_capreg_t r;
    ck_capreg_init(&r);
    obj_t *a = obj_new("alpha"), *b = obj_new("beta");
    ck_capreg_add(&r, &a->node);
    ck_capreg_add(&r, &b->node);
    CHECK_EQ(atomic_load(&a->node.refs), 2);
    CHECK(ck_capreg_get(&r, "gamma") == NULL);
    obj_t *g = obj_of(ck_capreg_get(&r, "beta"));
    CHECK(g == b);
    CHECK_EQ(atomic_load(&b->node.refs), 3);
    obj_unref(g);

    char **names = NULL;
    CHECK_EQ(ck_capreg_names(&r, &names), 2);
    CHECK((!strcmp(names[0], "alpha") && !strcmp(names[1], "beta")) ||
          (!strcmp(names[0], "beta") && !strcmp(names[1], "alpha")));
    CHECK(names[0] != a->name && names[0] != b->name); /* copies */
    ck_free(names[0]);
    ck_free(names[1]);
    ck_free(names);

    ck_capreg_node_t **all = NULL;
    CHECK_EQ(ck_capreg_all(&r, &all), 2);
    CHECK_EQ(atomic_load(&a->node.refs), 3);
    for (int i = 0; i < 2; i++)
        obj_unref(obj_of(all[i]));
    ck_free(all);

    /* the owner unlists a: the list's reference is handed back once */
    CHECK(ck_capreg_remove(&r, &a->node));
    CHECK(!ck_capreg_remove(&r, &a->node));
    obj_unref(a); /* the list's */
    CHECK_EQ(atomic_load(&freed), 0);
    CHECK(ck_capreg_get(&r, "alpha") == NULL);
    obj_unref(a); /* the creator's: the last */
    CHECK_EQ(atomic_load(&freed), 1);

    ck_capreg_node_t *n = ck_capreg_pop(&r);
    CHECK(obj_of(n) == b);
    CHECK(ck_capreg_pop(&r) == NULL);
    obj_unref(b);
    obj_unref(b);
    CHECK_EQ(atomic_load(&freed), 2);
    CHECK_EQ(ck_capreg_names(&r, &names), 0);
    ck_free(names);
    ck_capreg_destroy(&r);
}

typedef struct race {
    ck_capreg_t *r;
    atomic_bool stop;
    atomic_long hits;
} race_t;

static void *reader(void *arg)
{
    race_t *x = arg;
    while (!atomic_load(&x->stop)) {
        obj_t *o = obj_of(ck_capreg_get(x->r, "t"));
        if (o) {
            CHECK(!strcmp(o->name, "t")); /* still alive while referenced */
            atomic_fetch_add(&x->hits, 1);
            obj_unref(o);
        }
    }
    return NULL;
}

CK_TEST(capreg_readers_against_unlisting)
{
    atomic_store(&freed, 0);
    ck_capreg_t r;
    ck_capreg_init(&r);
    race_t x = {&r, false, 0};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, reader, &x), 0);
    const int rounds = 2000;
    for (int i = 0; i < rounds; i++) {
        obj_t *o = obj_new("t");
        ck_capreg_add(&r, &o->node);
        if (ck_capreg_remove(&r, &o->node))
            obj_unref(o);
        obj_unref(o); /* a reader may hold the last reference and free it */
    }
    atomic_store(&x.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&freed), rounds); /* each freed exactly once (ASan: no use after) */
    ck_capreg_destroy(&r);
}
