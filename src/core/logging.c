#include "core/logging.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int ck_log_level = CK_LOG_INFO;

static const char *names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};

int ck_log_parse_level(const char *s)
{
    static const struct { const char *n; int l; } tab[] = {
        {"trace", CK_LOG_TRACE}, {"debug", CK_LOG_DEBUG}, {"info", CK_LOG_INFO},
        {"warn", CK_LOG_WARN},   {"warning", CK_LOG_WARN}, {"error", CK_LOG_ERROR},
        {"off", CK_LOG_OFF},
    };
    if (!s)
        return -1;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        /* a directive with '=' names a module; only bare levels count here */
        if (!memchr(p, '=', n)) {
            while (n && isspace((unsigned char)*p)) { p++; n--; }
            while (n && isspace((unsigned char)p[n - 1])) n--;
            for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
                if (strlen(tab[i].n) == n && strncasecmp(p, tab[i].n, n) == 0)
                    return tab[i].l;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return -1;
}

void ck_logf(int level, const char *part, const char *fmt, ...)
{
    if (level < ck_log_level || level >= CK_LOG_OFF)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], part);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof(line) - (size_t)n - 1 ? (size_t)m : sizeof(line) - (size_t)n - 2);
    /* one event, one line: newlines inside a message become spaces */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
