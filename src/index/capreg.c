/* A capability's registry of open topics (capreg.h). */
#include "index/capreg.h"

#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

void ck_capreg_init(ck_capreg_t *r)
{
    pthread_mutex_init(&r->mu, NULL);
    r->head = NULL;
}

void ck_capreg_destroy(ck_capreg_t *r)
{
    pthread_mutex_destroy(&r->mu);
}

void ck_capreg_node_init(ck_capreg_node_t *n, const char *name)
{
    n->next = NULL;
    n->name = name;
    atomic_init(&n->refs, 1);
}

void ck_capreg_ref(ck_capreg_node_t *n)
{
    atomic_fetch_add(&n->refs, 1);
}

bool ck_capreg_unref(ck_capreg_node_t *n)
{
    return atomic_fetch_sub(&n->refs, 1) == 1;
}

void ck_capreg_add(ck_capreg_t *r, ck_capreg_node_t *n)
{
    ck_capreg_ref(n);
    pthread_mutex_lock(&r->mu);
    n->next = r->head;
    r->head = n;
    pthread_mutex_unlock(&r->mu);
}

bool ck_capreg_remove(ck_capreg_t *r, ck_capreg_node_t *n)
{
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (ck_capreg_node_t **pp = &r->head; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            found = true;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return found;
}

ck_capreg_node_t *ck_capreg_pop(ck_capreg_t *r)
{
    pthread_mutex_lock(&r->mu);
    ck_capreg_node_t *n = r->head;
    if (n)
        r->head = n->next;
    pthread_mutex_unlock(&r->mu);
    return n;
}

ck_capreg_node_t *ck_capreg_get(ck_capreg_t *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    ck_capreg_node_t *n = r->head;
    while (n && strcmp(n->name, name))
        n = n->next;
    if (n)
        ck_capreg_ref(n);
    pthread_mutex_unlock(&r->mu);
    return n;
}

static size_t count_locked(const ck_capreg_t *r)
{
    size_t n = 0;
    for (const ck_capreg_node_t *x = r->head; x; x = x->next)
        n++;
    return n;
}

int ck_capreg_all(ck_capreg_t *r, ck_capreg_node_t ***out)
{
    pthread_mutex_lock(&r->mu);
    size_t n = count_locked(r), k = 0;
    ck_capreg_node_t **v = ck_calloc(n ? n : 1, sizeof(*v));
    for (ck_capreg_node_t *x = r->head; v && x; x = x->next) {
        ck_capreg_ref(x);
        v[k++] = x;
    }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return v ? (int)k : CK_ENOMEM;
}

int ck_capreg_names(ck_capreg_t *r, char ***names)
{
    *names = NULL;
    pthread_mutex_lock(&r->mu);
    size_t n = count_locked(r), k = 0;
    char **v = ck_calloc(n ? n : 1, sizeof(*v));
    for (ck_capreg_node_t *x = r->head; v && x; x = x->next) {
        if (!(v[k] = ck_strdup(x->name)))
            break;
        k++;
    }
    pthread_mutex_unlock(&r->mu);
    if (!v || k < n) {
        for (size_t i = 0; v && i < k; i++)
            ck_free(v[i]);
        ck_free(v);
        return CK_ENOMEM;
    }
    *names = v;
    return (int)k;
}
