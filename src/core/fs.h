/* Small file-system helpers shared by the parts that keep files (log metadata, columnar
 * data, the server's data folder). Any thread. */
#ifndef CK_CORE_FS_H
#define CK_CORE_FS_H

#include <stdbool.h>
#include <stddef.h>

/* Creates path and its missing parents (mode 0755); an existing folder is fine. Returns 0
 * or the CK_E* code of the failing mkdir (errno is left set); CK_ETOOBIG for a path of
 * 4096 bytes or more. */
int ck_mkdirs(const char *path);
/* fsync of a file (dir false) or a folder (dir true). Returns 0 or a CK_E* code. */
int ck_fsync_path(const char *path, bool dir);
/* Writes n bytes to path (created or truncated, mode 0644) and fsyncs it. 0 or CK_E*. */
int ck_write_file_sync(const char *path, const void *data, size_t n);
/* Replaces path atomically: writes and fsyncs tmp, renames it over path, fsyncs the
 * folder dir (NULL = do not). On error tmp is removed and path is unchanged. */
int ck_replace_file(const char *tmp, const char *path, const char *dir, const void *data, size_t n);
/* Removes path and everything below it, not following symlinks. Returns 0, or CK_EIO if
 * something could not be removed (errno set). */
int ck_rmtree(const char *path);

#endif
