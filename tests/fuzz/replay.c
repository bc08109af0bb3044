/*
 * The replay driver: a main() that feeds every file named on the command
 * line, and every file in every directory named there (not recursive, in
 * name order), to LLVMFuzzerTestOneInput() once. It makes each fuzz target
 * a plain program that any compiler builds, so that the corpus replays as a
 * ctest regression in every build, sanitized when the build is.
 *
 * Each input is read into a buffer of exactly its size, as libFuzzer does,
 * so that ASan sees a read one past the end.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    struct stat st;
    size_t n;

    if (fp == NULL || fstat(fileno(fp), &st) != 0) {
        fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
        if (fp != NULL)
            fclose(fp);
        return -1;
    }
    /* malloc(0) may return NULL: keep one byte, but pass the true size. */
    buf = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        fclose(fp);
        fprintf(stderr, "replay: out of memory for '%s'\n", path);
        return -1;
    }
    n = fread(buf, 1, (size_t)st.st_size, fp);
    fclose(fp);
    if (n != (size_t)st.st_size) {
        fprintf(stderr, "replay: short read of '%s'\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay the regular files of `dir`; adds their count to *count. */
static int
replay_dir(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*nn));
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
            cap = cap ? cap * 2 : 64;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        size_t plen = strlen(dir) + 1 + strlen(names[i]) + 1;
        char *path = malloc(plen);
        struct stat st;

        if (rc == 0 && path != NULL) {
            snprintf(path, plen, "%s/%s", dir, names[i]);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (replay_file(path) != 0)
                    rc = -1;
                else
                    (*count)++;
            }
        } else if (path == NULL) {
            rc = -1;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

int
main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: cannot stat '%s': %s\n", argv[i],
                    strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (replay_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("replay: %zu inputs, %s\n", count, rc == 0 ? "no finding" : "errors");
    /* An empty corpus would make the ctest prove nothing. */
    return rc != 0 || count == 0;
}
