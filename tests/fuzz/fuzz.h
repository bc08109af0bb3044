/*
 * The one entry point of a fuzz target, as libFuzzer calls it: test one
 * input of `size` bytes; return 0. A target reports a bug by crashing
 * (abort(), or a sanitizer's report), never by its return value.
 *
 * Each tests/fuzz/fuzz_<parser>.c is linked twice: with libFuzzer (make
 * fuzz, clang) and with replay.c (every build; ctest fuzz.<parser> replays
 * corpus/<parser>/ through it).
 */
#ifndef HQ_FUZZ_H
#define HQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop the target with a message when `cond` is false: a finding. */
#define HQ_FUZZ_CHECK(cond, ...)                                              \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond,         \
                    __FILE__, __LINE__);                                      \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif /* HQ_FUZZ_H */
