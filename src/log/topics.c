/* The topic registry and its on-disk form.
 *
 * <data>/meta/topics/<name>.topic, one per topic, text:
 *     chronik-topic 1
 *     id <32 hex digits>
 *     partitions <n>
 *     config <key>=<value>          (zero or more; canonical key names)
 *     crc <8 hex digits>            (CRC-32C of every byte before this line)
 * Written to <name>.topic.tmp, fsynced, renamed over <name>.topic, then the folder is
 * fsynced, so a reader sees the old or the new file, never a mix. A file whose crc line
 * does not match is reported and the topic is skipped (its data stays on disk).
 *
 * Delete order: the .topic file is removed (and the folder fsynced) first, then the
 * partition folders. At start, partition folders that belong to no topic are the remains
 * of an interrupted delete and are removed. */
#include "log/topics.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"

struct ck_topics {
    char *meta_dir;
    ck_log_t *log;
    ck_topic_defaults_t defs;
    ck_topic_t **items;
    int count, cap;
};

bool ck_topic_name_valid(const char *name, int len, const char **why)
{
    if (len <= 0) {
        *why = "Topic name is empty";
        return false;
    }
    if (len > 249) {
        *why = "Topic name is longer than 249 characters";
        return false;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        *why = "Topic name cannot be \".\" or \"..\"";
        return false;
    }
    for (int i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            *why = "Topic name contains a character other than ASCII alphanumerics, '.', '_' and '-'";
            return false;
        }
    }
    return true;
}

static const char *canonical(const char *key)
{
    const ck_cfg_def_t *d = ck_topic_cfg_find(key, -1);
    return d && d->alias_of ? d->alias_of : key;
}

const char *ck_topic_config(const ck_topic_t *topic, const char *key, bool *is_default)
{
    const char *k = canonical(key);
    const char *v = ck_kvs_get(&topic->configs, k);
    if (is_default)
        *is_default = v == NULL;
    if (v)
        return v;
    const ck_cfg_def_t *d = ck_topic_cfg_find(k, -1);
    return d ? d->default_value : NULL;
}

static int64_t cfg_long(const ck_topic_t *t, const char *key)
{
    const char *v = ck_topic_config(t, key, NULL);
    return v ? strtoll(v, NULL, 10) : 0;
}

static void derive(ck_topic_t *t, ck_log_config_t *lc)
{
    ck_log_config_default(lc);
    lc->segment_bytes = cfg_long(t, "segment.bytes");
    lc->segment_ms = cfg_long(t, "segment.ms");
    lc->retention_ms = cfg_long(t, "retention.ms");
    lc->retention_bytes = cfg_long(t, "retention.bytes");
    lc->index_interval_bytes = (int32_t)cfg_long(t, "index.interval.bytes");
    const char *ts = ck_topic_config(t, "message.timestamp.type", NULL);
    t->log_append_time = ts && strcmp(ts, "LogAppendTime") == 0;
    t->max_message_bytes = (int32_t)cfg_long(t, "max.message.bytes");
}

static int write_meta(ck_topics_t *ts, const ck_topic_t *t)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    char line[512];
    int n = snprintf(line, sizeof(line), "chronik-topic 1\nid ");
    ck_wr_bytes(&w, line, (size_t)n);
    for (int i = 0; i < 16; i++) {
        n = snprintf(line, sizeof(line), "%02x", t->id[i]);
        ck_wr_bytes(&w, line, (size_t)n);
    }
    n = snprintf(line, sizeof(line), "\npartitions %d\n", t->npart);
    ck_wr_bytes(&w, line, (size_t)n);
    for (int i = 0; i < t->configs.count; i++) {
        ck_wr_bytes(&w, "config ", 7);
        ck_wr_bytes(&w, t->configs.items[i].key, strlen(t->configs.items[i].key));
        ck_wr_u8(&w, '=');
        ck_wr_bytes(&w, t->configs.items[i].value, strlen(t->configs.items[i].value));
        ck_wr_u8(&w, '\n');
    }
    if (w.err) {
        ck_wbuf_free(&w);
        return CK_ENOMEM;
    }
    n = snprintf(line, sizeof(line), "crc %08x\n", ck_crc32c(0, w.data, w.len));
    ck_wr_bytes(&w, line, (size_t)n);

    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s.topic", ts->meta_dir, t->name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ck_from_errno(errno);
    } else {
        size_t off = 0;
        while (off < w.len) {
            ssize_t k = write(fd, w.data + off, w.len - off);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                rc = ck_from_errno(errno);
                break;
            }
            off += (size_t)k;
        }
        if (!rc && fsync(fd) < 0)
            rc = ck_from_errno(errno);
        close(fd);
        if (!rc && rename(tmp, path) < 0)
            rc = ck_from_errno(errno);
        if (!rc)
            rc = ck_fsync_path(ts->meta_dir, true);
        if (rc)
            unlink(tmp);
    }
    ck_wbuf_free(&w);
    if (rc)
        CK_ERROR("topics", "cannot write metadata of topic %s: %s", t->name, ck_strerror(rc));
    return rc;
}

static void topic_free(ck_topic_t *t)
{
    if (!t)
        return;
    ck_free(t->name);
    ck_free(t->parts);
    ck_kvs_free(&t->configs);
    ck_free(t);
}

static int open_parts(ck_topics_t *ts, ck_topic_t *t, int32_t from, int32_t to)
{
    ck_partition_t **np = ck_realloc(t->parts, (size_t)to * sizeof(*np));
    if (!np)
        return CK_ENOMEM;
    t->parts = np;
    ck_log_config_t lc;
    derive(t, &lc);
    for (int32_t p = from; p < to; p++) {
        int rc = ck_log_partition_open(ts->log, t->name, p, &lc, &t->parts[p]);
        if (rc) {
            CK_ERROR("topics", "cannot open partition %s-%d: %s", t->name, p, ck_strerror(rc));
            return rc;
        }
        t->npart = p + 1;
    }
    return 0;
}

static int add(ck_topics_t *ts, ck_topic_t *t)
{
    if (ts->count == ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 16;
        ck_topic_t **n = ck_realloc(ts->items, (size_t)cap * sizeof(*n));
        if (!n)
            return CK_ENOMEM;
        ts->items = n;
        ts->cap = cap;
    }
    ts->items[ts->count++] = t;
    return 0;
}

/* Parses one .topic file. Returns the topic (partitions not yet opened) or NULL. */
static ck_topic_t *load_meta(const char *path, const char *name, int32_t *npart)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    ck_topic_t *t = NULL;
    if (n <= 0)
        goto bad;
    char *crcl = NULL;
    for (char *p = buf + n - 2; p > buf; p--)
        if (*p == '\n') {
            crcl = p + 1;
            break;
        }
    if (!crcl || strncmp(crcl, "crc ", 4) != 0 ||
        strtoul(crcl + 4, NULL, 16) != ck_crc32c(0, buf, (size_t)(crcl - buf)))
        goto bad;
    *crcl = 0;
    t = ck_calloc(1, sizeof(*t));
    if (!t || !(t->name = ck_strdup(name)))
        goto bad;
    *npart = -1;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "id ", 3) == 0 && strlen(line) == 35) {
            for (int i = 0; i < 16; i++)
                t->id[i] = (uint8_t)(ck_hexval(line[3 + 2 * i]) << 4 | ck_hexval(line[4 + 2 * i]));
        } else if (strncmp(line, "partitions ", 11) == 0) {
            *npart = (int32_t)strtol(line + 11, NULL, 10);
        } else if (strncmp(line, "config ", 7) == 0) {
            char *eq = strchr(line + 7, '=');
            if (!eq)
                goto bad;
            *eq = 0;
            if (ck_kvs_set(&t->configs, line + 7, eq + 1))
                goto bad;
        }
    }
    if (*npart < 1)
        goto bad;
    free(buf);
    return t;
bad:
    free(buf);
    topic_free(t);
    return NULL;
}

int ck_topics_open(const char *data_dir, ck_log_t *log, const ck_topic_defaults_t *defs,
                   ck_topics_t **out)
{
    ck_topics_t *ts = ck_calloc(1, sizeof(*ts));
    if (!ts)
        return CK_ENOMEM;
    char path[4096];
    snprintf(path, sizeof(path), "%s/meta/topics", data_dir);
    ts->meta_dir = ck_strdup(path);
    ts->log = log;
    ts->defs = *defs;
    int rc = ck_mkdirs(path);
    if (rc) {
        ck_topics_close(ts);
        return rc;
    }
    DIR *d = opendir(path);
    if (!d) {
        rc = ck_from_errno(errno);
        ck_topics_close(ts);
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len > 10 && strcmp(de->d_name + len - 10, ".topic.tmp") == 0) {
            char p[4400];
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            unlink(p);
            continue;
        }
        if (len <= 6 || strcmp(de->d_name + len - 6, ".topic") != 0)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(len - 6), de->d_name);
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        int32_t np = 0;
        ck_topic_t *t = load_meta(p, name, &np);
        if (!t) {
            CK_ERROR("topics", "metadata file %s is damaged; topic %s is not loaded", p, name);
            continue;
        }
        if ((rc = add(ts, t)) || (rc = open_parts(ts, t, 0, np))) {
            closedir(d);
            ck_topics_close(ts);
            return rc;
        }
    }
    closedir(d);
    /* remove partition folders of deleted topics (an interrupted delete) */
    snprintf(path, sizeof(path), "%s/log", data_dir);
    d = opendir(path);
    if (d) {
        while ((de = readdir(d))) {
            char *dash = strrchr(de->d_name, '-');
            if (de->d_name[0] == '.' || !dash)
                continue;
            ck_topic_t *t = ck_topics_get(ts, de->d_name, (int)(dash - de->d_name));
            long p = strtol(dash + 1, NULL, 10);
            if (t && p < t->npart)
                continue;
            /* a topic whose metadata file is damaged keeps its data for a person to look at */
            char meta[4400];
            struct stat mst;
            snprintf(meta, sizeof(meta), "%s/%.*s.topic", ts->meta_dir, (int)(dash - de->d_name), de->d_name);
            if (stat(meta, &mst) == 0)
                continue;
            char victim[4400];
            snprintf(victim, sizeof(victim), "%s/%s", path, de->d_name);
            CK_WARN("topics", "removing %s: it belongs to no topic", victim);
            if (ck_rmtree(victim) != 0)
                CK_WARN("topics", "could not remove %s: %s", victim, strerror(errno));
        }
        closedir(d);
    }
    CK_INFO("topics", "loaded %d topics", ts->count);
    *out = ts;
    return 0;
}

void ck_topics_close(ck_topics_t *ts)
{
    if (!ts)
        return;
    for (int i = 0; i < ts->count; i++)
        topic_free(ts->items[i]);
    ck_free(ts->items);
    ck_free(ts->meta_dir);
    ck_free(ts);
}

ck_topic_t *ck_topics_get(ck_topics_t *ts, const char *name, int len)
{
    if (len < 0)
        len = (int)strlen(name);
    for (int i = 0; i < ts->count; i++)
        if ((int)strlen(ts->items[i]->name) == len && memcmp(ts->items[i]->name, name, (size_t)len) == 0)
            return ts->items[i];
    return NULL;
}

int ck_topics_count(const ck_topics_t *ts) { return ts->count; }
ck_topic_t *ck_topics_at(ck_topics_t *ts, int i) { return ts->items[i]; }
const ck_topic_defaults_t *ck_topics_defaults(const ck_topics_t *ts) { return &ts->defs; }

ck_topic_t *ck_topics_by_id(ck_topics_t *ts, const uint8_t id[16])
{
    for (int i = 0; i < ts->count; i++)
        if (memcmp(ts->items[i]->id, id, 16) == 0)
            return ts->items[i];
    return NULL;
}

int ck_topics_create(ck_topics_t *ts, const char *name, int32_t partitions, const ck_kvs_t *configs,
                     bool validate_only, char *msg, int msglen, ck_topic_t **out)
{
    const char *why;
    if (!ck_topic_name_valid(name, (int)strlen(name), &why)) {
        snprintf(msg, (size_t)msglen, "%s", why);
        return CK_EINVAL;
    }
    if (ck_topics_get(ts, name, -1)) {
        snprintf(msg, (size_t)msglen, "Topic '%s' already exists.", name);
        return CK_EEXIST;
    }
    if (partitions < 1 || partitions > 100000) {
        snprintf(msg, (size_t)msglen, "Number of partitions must be between 1 and 100000.");
        return CK_ERANGE;
    }
    ck_topic_t *t = ck_calloc(1, sizeof(*t));
    if (!t || !(t->name = ck_strdup(name))) {
        ck_free(t);
        return CK_ENOMEM;
    }
    for (int i = 0; configs && i < configs->count; i++) {
        int rc = ck_topic_cfg_validate(configs->items[i].key, configs->items[i].value, msg, msglen);
        if (!rc)
            rc = ck_kvs_set(&t->configs, canonical(configs->items[i].key), configs->items[i].value);
        if (rc) {
            topic_free(t);
            return rc;
        }
    }
    /* server-wide capability defaults become explicit settings of the new topic */
    static const struct { const char *k; size_t off; } caps[] = {
        {"columnar.enabled", offsetof(ck_topic_defaults_t, columnar)},
        {"searchable", offsetof(ck_topic_defaults_t, searchable)},
        {"vector.enabled", offsetof(ck_topic_defaults_t, vector)},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (*(const bool *)((const char *)&ts->defs + caps[i].off) && !ck_kvs_get(&t->configs, caps[i].k))
            ck_kvs_set(&t->configs, caps[i].k, "true");
    int crc = ck_topic_cfg_check_set(&t->configs, msg, msglen);
    if (crc || validate_only) {
        topic_free(t);
        return crc;
    }
    if (getrandom(t->id, 16, 0) != 16) {
        for (int i = 0; i < 16; i++)
            t->id[i] = (uint8_t)rand();
    }
    t->id[6] = (uint8_t)((t->id[6] & 0x0f) | 0x40); /* UUID v4 */
    t->id[8] = (uint8_t)((t->id[8] & 0x3f) | 0x80);
    t->npart = partitions;
    int rc = write_meta(ts, t);
    if (!rc) {
        t->npart = 0;
        rc = add(ts, t);
        if (!rc && (rc = open_parts(ts, t, 0, partitions)) != 0) {
            snprintf(msg, (size_t)msglen, "Cannot create partition files: %s", ck_strerror(rc));
            ck_topics_delete(ts, t);
            return rc;
        }
    }
    if (rc) {
        snprintf(msg, (size_t)msglen, "Cannot store topic metadata: %s", ck_strerror(rc));
        topic_free(t);
        return rc;
    }
    CK_INFO("topics", "created topic %s with %d partitions", name, partitions);
    if (out)
        *out = t;
    return 0;
}

int ck_topics_delete(ck_topics_t *ts, ck_topic_t *t)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s.topic", ts->meta_dir, t->name);
    if (unlink(path) < 0 && errno != ENOENT)
        return ck_from_errno(errno);
    ck_fsync_path(ts->meta_dir, true);
    for (int32_t p = 0; p < t->npart; p++)
        if (t->parts[p])
            ck_log_partition_drop(ts->log, t->parts[p]);
    for (int i = 0; i < ts->count; i++)
        if (ts->items[i] == t) {
            memmove(&ts->items[i], &ts->items[i + 1], (size_t)(ts->count - i - 1) * sizeof(t));
            ts->count--;
            break;
        }
    CK_INFO("topics", "deleted topic %s", t->name);
    topic_free(t);
    return 0;
}

int ck_topics_add_partitions(ck_topics_t *ts, ck_topic_t *t, int32_t total, bool validate_only,
                             char *msg, int msglen)
{
    if (total <= t->npart) {
        snprintf(msg, (size_t)msglen, "Topic currently has %d partitions, which is higher than or equal to the requested %d.", t->npart, total);
        return CK_EINVAL;
    }
    if (total > 100000) {
        snprintf(msg, (size_t)msglen, "Number of partitions must be at most 100000.");
        return CK_ERANGE;
    }
    if (validate_only)
        return 0;
    int32_t old = t->npart;
    t->npart = total;
    int rc = write_meta(ts, t);
    t->npart = old;
    if (!rc)
        rc = open_parts(ts, t, old, total);
    if (rc)
        snprintf(msg, (size_t)msglen, "Cannot add partitions: %s", ck_strerror(rc));
    return rc;
}

int ck_topics_set_configs(ck_topics_t *ts, ck_topic_t *t, const ck_kvs_t *configs)
{
    ck_kvs_t old = t->configs, n;
    int rc = ck_kvs_copy(&n, configs);
    if (rc)
        return rc;
    for (int i = 0; i < n.count; i++) {
        const char *c = canonical(n.items[i].key);
        if (c != n.items[i].key && strcmp(c, n.items[i].key) != 0) {
            char *k = ck_strdup(c);
            if (!k) {
                ck_kvs_free(&n);
                return CK_ENOMEM;
            }
            ck_free(n.items[i].key);
            n.items[i].key = k;
        }
    }
    t->configs = n;
    rc = write_meta(ts, t);
    if (rc) {
        t->configs = old;
        ck_kvs_free(&n);
        return rc;
    }
    ck_kvs_free(&old);
    ck_log_config_t lc;
    derive(t, &lc);
    for (int32_t p = 0; p < t->npart; p++)
        ck_partition_set_config(t->parts[p], &lc);
    return 0;
}
