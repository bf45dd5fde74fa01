/* Logging: one line per event to stderr: "2026-01-02T03:04:05.678Z INFO  part: message".
 * Thread-safe (one write(2) per line). Level from CHRONIK_LOG_LEVEL / RUST_LOG. */
#ifndef CK_CORE_LOGGING_H
#define CK_CORE_LOGGING_H

enum ck_log_level { CK_LOG_TRACE, CK_LOG_DEBUG, CK_LOG_INFO, CK_LOG_WARN, CK_LOG_ERROR, CK_LOG_OFF };

extern int ck_log_level;

/* Parses "trace|debug|info|warn|warning|error|off" (case-insensitive); also accepts
 * RUST_LOG-style "info,crate=debug" by taking the first bare level. -1 if none. */
int ck_log_parse_level(const char *s);

void ck_logf(int level, const char *part, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define CK_TRACE(part, ...) do { if (ck_log_level <= CK_LOG_TRACE) ck_logf(CK_LOG_TRACE, part, __VA_ARGS__); } while (0)
#define CK_DEBUG(part, ...) do { if (ck_log_level <= CK_LOG_DEBUG) ck_logf(CK_LOG_DEBUG, part, __VA_ARGS__); } while (0)
#define CK_INFO(part, ...) do { if (ck_log_level <= CK_LOG_INFO) ck_logf(CK_LOG_INFO, part, __VA_ARGS__); } while (0)
#define CK_WARN(part, ...) do { if (ck_log_level <= CK_LOG_WARN) ck_logf(CK_LOG_WARN, part, __VA_ARGS__); } while (0)
#define CK_ERROR(part, ...) do { if (ck_log_level <= CK_LOG_ERROR) ck_logf(CK_LOG_ERROR, part, __VA_ARGS__); } while (0)

#endif
