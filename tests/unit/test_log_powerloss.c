/* Power loss, simulated: the page cache is lost, only what was fsynced stays.
 *
 * The fsync hooks note, for every .log file, its size at each successful fdatasync. At a
 * random moment the test "cuts the power": from then on fsyncs fail, the durable end D seen
 * at that instant is kept, the log is closed, and every .log file is cut back to its last
 * fsynced size (never fsynced: empty). Index files are deleted (rebuilt at open). The log
 * is reopened: every record below D must be there, byte for byte. This checks the order of
 * the group commit: durable_end may only move past data whose fsync returned. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log_int.h"
#include "test.h"
#include "test_log_util.h"

#define MAX_FILES 512

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bool power_cut;
static struct {
    char path[512];
    int64_t synced;
} files[MAX_FILES];
static int nfiles;

static void note_synced(int fd)
{
    char link[64], path[512];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return;
    path[n] = 0;
    if (n < 4 || strcmp(path + n - 4, ".log") != 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    for (int i = 0; i < nfiles; i++)
        if (!strcmp(files[i].path, path)) {
            files[i].synced = st.st_size;
            return;
        }
    if (nfiles < MAX_FILES) {
        snprintf(files[nfiles].path, sizeof(files[nfiles].path), "%s", path);
        files[nfiles++].synced = st.st_size;
    }
}

static int hook_fdatasync(int fd)
{
    pthread_mutex_lock(&mu);
    int rc;
    if (power_cut) {
        errno = EIO;
        rc = -1;
    } else {
        rc = fdatasync(fd);
        if (rc == 0)
            note_synced(fd); /* recorded before the caller can publish anything */
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int hook_fsync(int fd)
{
    pthread_mutex_lock(&mu);
    int rc = power_cut ? (errno = EIO, -1) : fsync(fd);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int64_t synced_size(const char *path)
{
    for (int i = 0; i < nfiles; i++)
        if (!strcmp(files[i].path, path))
            return files[i].synced;
    return 0;
}

/* Cuts every .log back to its fsynced size and removes the index files. */
static void lose_page_cache(const char *pdir)
{
    DIR *d = opendir(pdir);
    CHECK(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        char path[1200], real[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", pdir, name);
        size_t n = strlen(name);
        if (n > 4 && !strcmp(name + n - 4, ".log")) {
            CHECK(realpath(path, real) != NULL);
            CHECK_EQ(truncate(path, synced_size(real)), 0);
        } else if ((n > 6 && !strcmp(name + n - 6, ".index")) ||
                   (n > 10 && !strcmp(name + n - 10, ".timeindex"))) {
            CHECK_EQ(unlink(path), 0);
        }
    }
    closedir(d);
}

static int64_t lost_total, durable_total;

static void one_run(unsigned seed)
{
    const char *dir = tl_dir("pl");
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/run%u", dir, seed);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    pthread_mutex_lock(&mu);
    power_cut = false;
    nfiles = 0;
    pthread_mutex_unlock(&mu);
    ck__log_io.io_fdatasync = hook_fdatasync;
    ck__log_io.io_fsync = hook_fsync;

    srand(seed);
    ck_log_config_t c;
    tl_cfg(&c, 64 << 10, 4096); /* small segments: rolls happen during the run */
    ck_log_t *log = tl_open(sub, 1);
    ck_partition_t *p = tl_part(log, "t", 0, &c);
    tl_model_t m = {0};
    int appends = 200 + rand() % 600;
    for (int i = 0; i < appends; i++) {
        tl_append(p, &m, 1 + rand() % 20, (size_t)(10 + rand() % 300), 1000 + i, 1, -1);
        if (rand() % 8 == 0)
            usleep((useconds_t)(rand() % 1500));
    }
    pthread_mutex_lock(&mu);
    power_cut = true;
    int64_t durable = ck_partition_durable_end(p);
    int64_t written = ck_partition_log_end(p);
    pthread_mutex_unlock(&mu);
    ck_log_close(log); /* its final fsyncs fail: nothing more becomes durable */

    char pdir[700];
    snprintf(pdir, sizeof(pdir), "%s/t-0", sub);
    lose_page_cache(pdir);

    ck__log_io.io_fdatasync = fdatasync;
    ck__log_io.io_fsync = fsync;
    log = tl_open(sub, 1);
    p = tl_part(log, "t", 0, &c);
    if (ck_partition_log_end(p) < durable)
        CK_FAIL("seed %u: durable end was %lld before the power cut, log end %lld after",
                seed, (long long)durable, (long long)ck_partition_log_end(p));
    if (durable > 0)
        tl_verify(p, &m, 0, durable, 1 << 20);
    /* and the log takes appends again at the recovered end */
    int64_t end = ck_partition_log_end(p);
    lost_total += written - end;
    durable_total += durable;
    size_t keep = 0;
    while (keep < m.n && m.last[keep] < end)
        keep++;
    tl_model_cut(&m, keep);
    tl_append(p, &m, 3, 50, 99999, 1, -1);
    tl_wait_durable(log, p);
    tl_verify(p, &m, 0, ck_partition_log_end(p), 1 << 20);
    ck_log_close(log);
    tl_model_free(&m);
}

CK_TEST(log_power_loss_keeps_everything_durable)
{
    for (unsigned seed = 1; seed <= 12; seed++)
        one_run(seed);
    /* the simulation must really have lost unsynced records, and kept durable ones */
    CHECK(lost_total > 0);
    CHECK(durable_total > 0);
}
