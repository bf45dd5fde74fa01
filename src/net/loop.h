/* The event loop: epoll, fd watchers, timers and cross-thread wakeups.
 *
 * One loop per I/O thread; every function here is called on the loop's own thread except
 * ck_loop_wakeup_signal(), which any thread may call. Callbacks run on the loop thread.
 * Watchers and timers are owned by the caller (embedded in its structures) and must stay
 * alive while registered. */
#ifndef CK_NET_LOOP_H
#define CK_NET_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ck_loop ck_loop_t;
typedef struct ck_watch ck_watch_t;
typedef struct ck_timer ck_timer_t;
typedef struct ck_wakeup ck_wakeup_t;

enum { CK_EV_READ = 1, CK_EV_WRITE = 2 };

/* events: CK_EV_* bits ready; an error or hang-up is reported as READ|WRITE so the owner
 * finds it on its next read or write. */
typedef void (*ck_watch_cb)(ck_watch_t *w, int events);
struct ck_watch {
    int fd;
    int events; /* currently requested */
    ck_watch_cb cb;
    void *data;
};

typedef void (*ck_timer_cb)(ck_timer_t *t);
struct ck_timer {
    int64_t deadline_ms; /* monotonic */
    ck_timer_cb cb;
    void *data;
    int heap_index; /* -1 when not armed */
};

typedef void (*ck_wakeup_cb)(ck_wakeup_t *wk);
struct ck_wakeup {
    ck_watch_t watch; /* eventfd */
    ck_wakeup_cb cb;
    void *data;
};

int ck_loop_new(ck_loop_t **out);
void ck_loop_free(ck_loop_t *loop);
/* Runs until ck_loop_stop(); returns 0 or a CK_E* code if epoll failed. */
int ck_loop_run(ck_loop_t *loop);
void ck_loop_stop(ck_loop_t *loop);
/* Monotonic ms cached at the start of each iteration (cheap). */
int64_t ck_loop_now(const ck_loop_t *loop);

/* Registers/changes/removes interest in fd. Changing to 0 events keeps it registered but
 * silent. Errors: CK_EIO (epoll_ctl failed), CK_ENOMEM. */
int ck_watch_start(ck_loop_t *loop, ck_watch_t *w, int fd, int events, ck_watch_cb cb, void *data);
int ck_watch_set(ck_loop_t *loop, ck_watch_t *w, int events);
void ck_watch_stop(ck_loop_t *loop, ck_watch_t *w);

void ck_timer_init(ck_timer_t *t, ck_timer_cb cb, void *data);
/* Arms (or re-arms) t to fire once at monotonic deadline_ms. */
int ck_timer_start(ck_loop_t *loop, ck_timer_t *t, int64_t deadline_ms);
void ck_timer_stop(ck_loop_t *loop, ck_timer_t *t);
static inline bool ck_timer_armed(const ck_timer_t *t) { return t->heap_index >= 0; }

/* An eventfd-backed wakeup: ck_loop_wakeup_signal() from any thread makes cb run once on
 * the loop thread (signals coalesce). */
int ck_wakeup_init(ck_loop_t *loop, ck_wakeup_t *wk, ck_wakeup_cb cb, void *data);
void ck_wakeup_signal(ck_wakeup_t *wk);
void ck_wakeup_close(ck_loop_t *loop, ck_wakeup_t *wk);

#endif
