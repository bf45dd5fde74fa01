/* Error codes shared by every part: 0 is success, failures are distinct negative values.
 * Kafka wire error codes are a separate enum (src/kafka/kerr.h) used only at the protocol edge. */
#ifndef CK_CORE_ERR_H
#define CK_CORE_ERR_H

enum {
    CK_OK = 0,
    CK_EINVAL = -1,   /* invalid argument or value */
    CK_ENOMEM = -2,   /* allocation failed */
    CK_EIO = -3,      /* read/write/fsync failed */
    CK_ENOSPC = -4,   /* disk full */
    CK_ECORRUPT = -5, /* checksum or structure mismatch */
    CK_ETRUNC = -6,   /* input ends before the structure does */
    CK_ERANGE = -7,   /* value out of the allowed range */
    CK_EAGAIN = -8,   /* try again later (non-blocking I/O) */
    CK_ENOENT = -9,   /* no such object */
    CK_EEXIST = -10,  /* object exists */
    CK_ECLOSED = -11, /* object is closed or shutting down */
    CK_ESTATE = -12,  /* object is in a sticky error state, refuses work */
    CK_ETOOBIG = -13, /* exceeds a size limit */
    CK_EUNSUP = -14,  /* not supported */
};

/* Static string for a CK_E* code; never NULL. */
const char *ck_strerror(int err);

/* Map an errno value to the closest CK_E* code. */
int ck_from_errno(int e);

#endif
