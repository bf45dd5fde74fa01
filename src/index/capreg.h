/* A capability's open topics by name (the search and vector capabilities keep one each):
 * a list under a mutex whose entries are counted references to the topic objects that
 * embed their node. The list is changed by the indexer's worker (open, close); readers on
 * any thread look topics up and take references. The object's owner frees it when
 * ck_capreg_unref says the last reference went. */
#ifndef CK_INDEX_CAPREG_H
#define CK_INDEX_CAPREG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ck_capreg_node {
    struct ck_capreg_node *next;
    const char *name; /* the topic's, owned by the object */
    _Atomic int refs;
} ck_capreg_node_t;

typedef struct ck_capreg {
    pthread_mutex_t mu; /* the list (readers iterating it may hold it too) */
    ck_capreg_node_t *head;
} ck_capreg_t;

void ck_capreg_init(ck_capreg_t *r);
/* The list must be empty (ck_capreg_pop each node first). */
void ck_capreg_destroy(ck_capreg_t *r);

/* A node not listed yet, with the one reference of its creator. */
void ck_capreg_node_init(ck_capreg_node_t *n, const char *name);
void ck_capreg_ref(ck_capreg_node_t *n);
/* Drops a reference; true when it was the last (the caller frees the object). */
bool ck_capreg_unref(ck_capreg_node_t *n);

/* Lists n; the list takes a reference of its own. */
void ck_capreg_add(ck_capreg_t *r, ck_capreg_node_t *n);
/* Unlists n: true if it was listed, and then the caller drops the list's reference. */
bool ck_capreg_remove(ck_capreg_t *r, ck_capreg_node_t *n);
/* Unlists the first node and hands over the list's reference; NULL when empty. */
ck_capreg_node_t *ck_capreg_pop(ck_capreg_t *r);

/* The node named name with a reference for the caller, or NULL. */
ck_capreg_node_t *ck_capreg_get(ck_capreg_t *r, const char *name);
/* Every node, each with a reference for the caller (*out: ck_free). Returns the count or
 * CK_ENOMEM. */
int ck_capreg_all(ck_capreg_t *r, ck_capreg_node_t ***out);
/* Copies of the names (each and the array: ck_free). Returns the count or CK_ENOMEM. */
int ck_capreg_names(ck_capreg_t *r, char ***names);

#endif
