/*
 * pushjobs: enqueue test jobs through the C client (pipelined), for the
 * integration tests and benchmarks.
 *
 *   pushjobs --url URL [--ns NS] [--shards N] [--batch N] [--depth N]
 *            [--body-size B] [--interleave] SPEC...
 *
 * SPEC is CUSTOMER:CODE*COUNT ("big:e*50000"), or @N:CODE*COUNT for the N
 * customers c0..c(N-1) ("@500:e*10"). With --interleave, jobs are pushed
 * round-robin across the SPECs' keys, else key after key. Each body is the
 * JSON {"n": I, "pad": "..."} where I counts the key's jobs from 1, so a
 * handler can check order. Prints one JSON line: stored, duplicate, full,
 * seconds. Exit 0 when Redis answered every push.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hookq/hookq.h"

struct key_spec {
    char customer[64];
    char code[64];
    long count, pushed;
};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
    fprintf(stderr, "usage: pushjobs --url URL [--ns NS] [--shards N] [--batch N] "
                    "[--depth N] [--body-size B] [--interleave] SPEC...\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct hq_store_options so = {0};
    struct hq_push_limits lim = {0};
    struct key_spec *keys = NULL;
    size_t nkeys = 0, cap = 0, batch = 1000, body_size = 0;
    int interleave = 0;
    long stored = 0, dup = 0, full = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--url") == 0 && i + 1 < argc)
            so.url = argv[++i];
        else if (strcmp(a, "--ns") == 0 && i + 1 < argc)
            so.ns = argv[++i];
        else if (strcmp(a, "--shards") == 0 && i + 1 < argc)
            so.shards = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(a, "--batch") == 0 && i + 1 < argc)
            batch = strtoul(argv[++i], NULL, 10);
        else if (strcmp(a, "--depth") == 0 && i + 1 < argc)
            lim.max_key_depth = strtoll(argv[++i], NULL, 10);
        else if (strcmp(a, "--body-size") == 0 && i + 1 < argc)
            body_size = strtoul(argv[++i], NULL, 10);
        else if (strcmp(a, "--interleave") == 0)
            interleave = 1;
        else if (a[0] == '-')
            usage();
        else {
            const char *colon = strchr(a, ':'), *star = strrchr(a, '*');
            long many = 1, count;
            if (!colon || !star || star < colon)
                usage();
            count = strtol(star + 1, NULL, 10);
            if (a[0] == '@')
                many = strtol(a + 1, NULL, 10);
            for (long k = 0; k < many; k++) {
                if (nkeys == cap) {
                    cap = cap ? 2 * cap : 64;
                    keys = realloc(keys, cap * sizeof(*keys));
                    if (!keys)
                        return 1;
                }
                struct key_spec *ks = &keys[nkeys++];
                memset(ks, 0, sizeof(*ks));
                if (a[0] == '@')
                    snprintf(ks->customer, sizeof(ks->customer), "c%ld", k);
                else
                    snprintf(ks->customer, sizeof(ks->customer), "%.*s",
                             (int)(colon - a), a);
                snprintf(ks->code, sizeof(ks->code), "%.*s",
                         (int)(star - colon - 1), colon + 1);
                ks->count = count;
            }
        }
    }
    if (!so.url || nkeys == 0 || batch == 0)
        usage();

    hq_client *c;
    if (hq_client_new(&so, &c) != HQ_OK) {
        fprintf(stderr, "pushjobs: %s\n", hq_client_errmsg(c));
        return 1;
    }
    struct hq_push *p = calloc(batch, sizeof(*p));
    struct hq_push_result *res = calloc(batch, sizeof(*res));
    char *bodies = malloc(batch * (body_size + 64));
    char *pad = malloc(body_size + 1);
    if (!p || !res || !bodies || !pad)
        return 1;
    memset(pad, 'x', body_size);
    pad[body_size] = '\0';

    double t0 = now_s();
    size_t cur = 0;
    for (;;) {
        size_t n = 0;
        while (n < batch) {
            size_t tries = 0;
            while (tries < nkeys && keys[cur].pushed == keys[cur].count) {
                cur = (cur + 1) % nkeys;
                tries++;
            }
            if (tries == nkeys)
                break;
            struct key_spec *ks = &keys[cur];
            char *b = bodies + n * (body_size + 64);
            int len = snprintf(b, body_size + 64, "{\"n\":%ld,\"pad\":\"%s\"}",
                               ++ks->pushed, pad);
            p[n] = (struct hq_push){ks->customer, strlen(ks->customer), ks->code,
                                    strlen(ks->code), b, (size_t)len, NULL, 0};
            n++;
            if (interleave)
                cur = (cur + 1) % nkeys;
        }
        if (n == 0)
            break;
        if (hq_client_push_many(c, p, n, &lim, res) != HQ_OK) {
            fprintf(stderr, "pushjobs: %s\n", hq_client_errmsg(c));
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            stored += res[i].status == HQ_PUSH_STORED;
            dup += res[i].status == HQ_PUSH_DUPLICATE;
            full += res[i].status == HQ_PUSH_FULL;
        }
    }
    printf("{\"stored\":%ld,\"duplicate\":%ld,\"full\":%ld,\"seconds\":%.3f}\n",
           stored, dup, full, now_s() - t0);
    hq_client_free(c);
    free(p);
    free(res);
    free(bodies);
    free(pad);
    free(keys);
    return 0;
}
