#include "net/loop.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"

struct ck_loop {
    int epfd;
    bool stop;
    int64_t now;
    ck_timer_t **heap; /* min-heap on deadline_ms */
    int heap_len, heap_cap;
};

int ck_loop_new(ck_loop_t **out)
{
    ck_loop_t *l = ck_calloc(1, sizeof(*l));
    if (!l)
        return CK_ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        ck_free(l);
        return ck_from_errno(errno);
    }
    l->now = ck_mono_ms();
    *out = l;
    return 0;
}

void ck_loop_free(ck_loop_t *l)
{
    if (!l)
        return;
    close(l->epfd);
    ck_free(l->heap);
    ck_free(l);
}

void ck_loop_stop(ck_loop_t *l) { l->stop = true; }
int64_t ck_loop_now(const ck_loop_t *l) { return l->now; }

static uint32_t to_epoll(int ev)
{
    return ((ev & CK_EV_READ) ? EPOLLIN : 0) | ((ev & CK_EV_WRITE) ? EPOLLOUT : 0);
}

int ck_watch_start(ck_loop_t *l, ck_watch_t *w, int fd, int events, ck_watch_cb cb, void *data)
{
    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->data = data;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return ck_from_errno(errno);
    return 0;
}

int ck_watch_set(ck_loop_t *l, ck_watch_t *w, int events)
{
    if (w->events == events)
        return 0;
    w->events = events;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return ck_from_errno(errno);
    return 0;
}

void ck_watch_stop(ck_loop_t *l, ck_watch_t *w)
{
    if (w->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

/* ---- timers: binary min-heap ---- */

void ck_timer_init(ck_timer_t *t, ck_timer_cb cb, void *data)
{
    t->cb = cb;
    t->data = data;
    t->heap_index = -1;
    t->deadline_ms = 0;
}

static void heap_swap(ck_loop_t *l, int a, int b)
{
    ck_timer_t *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_index = a;
    l->heap[b]->heap_index = b;
}

static void heap_up(ck_loop_t *l, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (l->heap[p]->deadline_ms <= l->heap[i]->deadline_ms)
            break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void heap_down(ck_loop_t *l, int i)
{
    for (;;) {
        int c = 2 * i + 1, m = i;
        if (c < l->heap_len && l->heap[c]->deadline_ms < l->heap[m]->deadline_ms)
            m = c;
        if (c + 1 < l->heap_len && l->heap[c + 1]->deadline_ms < l->heap[m]->deadline_ms)
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

void ck_timer_stop(ck_loop_t *l, ck_timer_t *t)
{
    int i = t->heap_index;
    if (i < 0)
        return;
    l->heap_len--;
    if (i != l->heap_len) {
        l->heap[i] = l->heap[l->heap_len];
        l->heap[i]->heap_index = i;
        heap_down(l, i);
        heap_up(l, i);
    }
    t->heap_index = -1;
}

int ck_timer_start(ck_loop_t *l, ck_timer_t *t, int64_t deadline_ms)
{
    ck_timer_stop(l, t);
    if (l->heap_len == l->heap_cap) {
        int cap = l->heap_cap ? l->heap_cap * 2 : 64;
        ck_timer_t **h = ck_realloc(l->heap, (size_t)cap * sizeof(*h));
        if (!h)
            return CK_ENOMEM;
        l->heap = h;
        l->heap_cap = cap;
    }
    t->deadline_ms = deadline_ms;
    t->heap_index = l->heap_len;
    l->heap[l->heap_len++] = t;
    heap_up(l, t->heap_index);
    return 0;
}

static void run_timers(ck_loop_t *l)
{
    while (l->heap_len > 0 && l->heap[0]->deadline_ms <= l->now) {
        ck_timer_t *t = l->heap[0];
        ck_timer_stop(l, t);
        t->cb(t);
    }
}

int ck_loop_run(ck_loop_t *l)
{
    struct epoll_event evs[256];
    l->stop = false;
    while (!l->stop) {
        l->now = ck_mono_ms();
        run_timers(l);
        if (l->stop)
            break;
        int timeout = -1;
        if (l->heap_len > 0) {
            int64_t d = l->heap[0]->deadline_ms - ck_mono_ms();
            timeout = d < 0 ? 0 : (d > 1000 ? 1000 : (int)d);
        }
        int n = epoll_wait(l->epfd, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            CK_ERROR("loop", "epoll_wait failed: errno %d", errno);
            return ck_from_errno(errno);
        }
        l->now = ck_mono_ms();
        for (int i = 0; i < n; i++) {
            ck_watch_t *w = evs[i].data.ptr;
            int ev = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                ev |= CK_EV_READ;
            if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                ev |= CK_EV_WRITE;
            w->cb(w, ev);
        }
    }
    return 0;
}

/* ---- wakeups ---- */

static void wakeup_ready(ck_watch_t *w, int events)
{
    ck_wakeup_t *wk = w->data;
    uint64_t v;
    while (read(w->fd, &v, sizeof(v)) == sizeof(v)) {}
    wk->cb(wk);
}

int ck_wakeup_init(ck_loop_t *l, ck_wakeup_t *wk, ck_wakeup_cb cb, void *data)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return ck_from_errno(errno);
    wk->cb = cb;
    wk->data = data;
    int rc = ck_watch_start(l, &wk->watch, fd, CK_EV_READ, wakeup_ready, wk);
    if (rc) {
        close(fd);
        return rc;
    }
    return 0;
}

void ck_wakeup_signal(ck_wakeup_t *wk)
{
    uint64_t one = 1;
    ssize_t n = write(wk->watch.fd, &one, sizeof(one));
    (void)n; /* EAGAIN means a wakeup is already pending */
}

void ck_wakeup_close(ck_loop_t *l, ck_wakeup_t *wk)
{
    ck_watch_stop(l, &wk->watch);
    close(wk->watch.fd);
    wk->watch.fd = -1;
}
