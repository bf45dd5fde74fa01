#include "core/err.h"

#include <errno.h>

const char *ck_strerror(int err)
{
    switch (err) {
    case CK_OK: return "success";
    case CK_EINVAL: return "invalid argument";
    case CK_ENOMEM: return "out of memory";
    case CK_EIO: return "I/O error";
    case CK_ENOSPC: return "no space left on device";
    case CK_ECORRUPT: return "corrupt data";
    case CK_ETRUNC: return "truncated input";
    case CK_ERANGE: return "value out of range";
    case CK_EAGAIN: return "resource temporarily unavailable";
    case CK_ENOENT: return "not found";
    case CK_EEXIST: return "already exists";
    case CK_ECLOSED: return "closed";
    case CK_ESTATE: return "in error state";
    case CK_ETOOBIG: return "too large";
    case CK_EUNSUP: return "not supported";
    default: return "unknown error";
    }
}

int ck_from_errno(int e)
{
    switch (e) {
    case 0: return CK_OK;
    case ENOMEM: return CK_ENOMEM;
    case ENOSPC: case EDQUOT: return CK_ENOSPC;
    case ENOENT: return CK_ENOENT;
    case EEXIST: return CK_EEXIST;
    case EAGAIN: return CK_EAGAIN;
    case EINVAL: return CK_EINVAL;
    case ERANGE: case EOVERFLOW: return CK_ERANGE;
    case EFBIG: return CK_ETOOBIG;
    default: return CK_EIO;
    }
}
