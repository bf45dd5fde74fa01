#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 4096
#define TEST_TIMEOUT_S 120

static struct {
    const char *name;
    ck_test_fn fn;
} tests[MAX_TESTS];
static int ntests;
static char tmpdir[256];

void ck_test_register(const char *name, ck_test_fn fn)
{
    if (ntests < MAX_TESTS) {
        tests[ntests].name = name;
        tests[ntests].fn = fn;
        ntests++;
    }
}

const char *ck_test_tmpdir(void) { return tmpdir; }

static int cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int matches(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

static void rm_rf(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    qsort(tests, (size_t)ntests, sizeof(tests[0]), cmp);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    int passed = 0, failed = 0;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 0; i < ntests; i++) {
        if (!matches(tests[i].name, argc, argv))
            continue;
        snprintf(tmpdir, sizeof(tmpdir), "%s/ck-unit-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 2;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(TEST_TIMEOUT_S);
            tests[i].fn();
            _exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        rm_rf(tmpdir);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok   %s\n", tests[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(st))
                printf("FAIL %s (signal %d%s)\n", tests[i].name, WTERMSIG(st),
                       WTERMSIG(st) == SIGALRM ? ", timeout" : "");
            else
                printf("FAIL %s\n", tests[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
