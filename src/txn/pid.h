/* Durable producer-id allocator (InitProducerId without a transactional id).
 *
 * Ids are handed out from blocks of CK_PID_BLOCK_SIZE. Before the first id of a block is
 * handed out, the block's end is persisted in <dir>/producer-id-block (temp file,
 * fdatasync, rename, folder fsync). A restart, clean or after a crash, continues at the
 * persisted end, i.e. at the next block: ids skipped by a restart are lost, but an id is
 * never handed out twice. Ids start at 0 and only increase.
 *
 * Ownership: the handle is the caller's, released with ck_pid_close.
 * Thread: owner thread only (the one handling InitProducerId); no locking. Only one handle
 * per folder at a time (two would hand out the same block). ck_pid_next does blocking
 * file I/O once per block. */
#ifndef CK_TXN_PID_H
#define CK_TXN_PID_H

#include <stdint.h>

typedef struct ck_pid ck_pid_t;

#define CK_PID_BLOCK_SIZE 1000
#define CK_PID_FILE "producer-id-block"

/* Opens the allocator stored in `dir`, creating the folder (and fsyncing its parent) if
 * missing, and removing a stray temp file. Nothing is written until the first
 * ck_pid_next. Returns 0 and *out, or
 *   CK_ECORRUPT  the file exists but is damaged (bad size, magic or CRC-32C). Refused
 *                rather than restarting at 0, which could reuse ids; an operator must
 *                restore or remove the file (knowing the ids in use).
 *   CK_ENOMEM, CK_EIO, CK_ENOENT (a parent of dir is missing), CK_EINVAL (path too long) */
int ck_pid_open(const char *dir, ck_pid_t **out);

/* Hands out the next producer id (>= 0). Returns 0 and *producer_id, or
 *   CK_EIO/CK_ENOSPC  persisting a new block failed. The allocator enters its sticky error
 *                     state: after a failed fsync the file's content is unknown, so it
 *                     refuses every later call with CK_ESTATE until reopened.
 *   CK_ESTATE         an earlier call failed as above.
 *   CK_ERANGE         the id space is exhausted. */
int ck_pid_next(ck_pid_t *p, int64_t *producer_id);

/* Frees the handle. Writes nothing (the block end is already durable). NULL allowed. */
void ck_pid_close(ck_pid_t *p);

#endif
