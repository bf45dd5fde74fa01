/* A small unit-test registry. Each test is a function registered at load time with
 * CK_TEST(name); `ck-unit [substring...]` runs the matching tests, each in a forked child
 * with a time limit, and ends with "N passed, N failed". */
#ifndef CK_TEST_H
#define CK_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*ck_test_fn)(void);
void ck_test_register(const char *name, ck_test_fn fn);

#define CK_TEST(name)                                                                      \
    static void test_##name(void);                                                         \
    __attribute__((constructor)) static void reg_##name(void)                              \
    {                                                                                      \
        ck_test_register(#name, test_##name);                                              \
    }                                                                                      \
    static void test_##name(void)

#define CK_FAIL(...)                                                                       \
    do {                                                                                   \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                  \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fprintf(stderr, "\n");                                                             \
        exit(1);                                                                           \
    } while (0)
#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (!(c))                                                                          \
            CK_FAIL("check failed: %s", #c);                                               \
    } while (0)
#define CHECK_EQ(a, b)                                                                     \
    do {                                                                                   \
        long long _a = (long long)(a), _b = (long long)(b);                                \
        if (_a != _b)                                                                      \
            CK_FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b);                             \
    } while (0)
#define CHECK_STREQ(a, b)                                                                  \
    do {                                                                                   \
        const char *_a = (a), *_b = (b);                                                   \
        if (strcmp(_a, _b) != 0)                                                           \
            CK_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, _a, _b);                         \
    } while (0)
#define CHECK_MEM(a, b, n)                                                                 \
    do {                                                                                   \
        if (memcmp((a), (b), (n)) != 0)                                                    \
            CK_FAIL("memory differs: %s vs %s (%zu bytes)", #a, #b, (size_t)(n));          \
    } while (0)

/* A fresh empty directory for this test (removed by the runner afterwards). */
const char *ck_test_tmpdir(void);

#endif
