/*
 * clustertool: the pure cluster and Sentinel code of src/lib driven from
 * the command line, so that test_cluster_lib.py can hold it against a real
 * Redis Cluster and real Sentinels.
 *
 *   clustertool keyslot KEY...           one slot per line (hq__cluster_keyslot)
 *   clustertool slots HOST:PORT          the slot map read from CLUSTER SLOTS:
 *                                        "START-END HOST:PORT" per run of slots
 *   clustertool layout HOST:PORT NS N    the shard layout line, then "even"/"uneven"
 *   clustertool sentinel LIST NAME [URL] the master the Sentinels give, checked
 *                                        with ROLE (URL: user, password, db);
 *                                        $HQ_SENTINEL_PASSWORD and
 *                                        $HQ_SENTINEL_USER: the Sentinels' own
 *   clustertool ping URL                 connect as the store does (AUTH, SELECT), PING
 *
 * Exit 0 on success; 1 with the library's message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "conn_int.h"
#include "sentinel_int.h"
#include "store_int.h"

static int
fail(const char *what, const char *msg)
{
    fprintf(stderr, "clustertool: %s: %s\n", what, msg);
    return 1;
}

static int
read_map(const char *hostport, struct hq__cluster_map *m)
{
    struct hq__store_addr a;
    struct hq__err e = {{0}};
    char url[300];
    redisContext *c;
    redisReply *r;
    int rc;

    snprintf(url, sizeof(url), "redis://%s", hostport);
    if (hq__store_parse_url(url, 0, &a, &e) != HQ_OK)
        return fail("url", e.msg);
    c = hq__conn_connect_sync(&a, &e);
    if (c == NULL)
        return fail("connect", e.msg);
    r = redisCommand(c, "CLUSTER SLOTS");
    rc = hq__cluster_map_from_slots(m, r, a.host, &e);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc == HQ_OK ? 0 : fail("slots", e.msg);
}

int
main(int argc, char **argv)
{
    struct hq__err e = {{0}};

    if (argc >= 3 && strcmp(argv[1], "keyslot") == 0) {
        for (int i = 2; i < argc; i++)
            printf("%u\n", hq__cluster_keyslot(argv[i], strlen(argv[i])));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "slots") == 0) {
        struct hq__cluster_map *m = malloc(sizeof(*m));
        unsigned start = 0;

        if (m == NULL || read_map(argv[2], m) != 0)
            return 1;
        for (unsigned s = 1; s <= HQ_CLUSTER_SLOTS; s++) {
            if (s < HQ_CLUSTER_SLOTS && m->slot_node[s] == m->slot_node[start])
                continue;
            if (m->slot_node[start]) {
                const struct hq__cluster_node *n = hq__cluster_map_node(m, start);
                printf("%u-%u %s:%d\n", start, s - 1, n->host, n->port);
            }
            start = s;
        }
        free(m);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "layout") == 0) {
        struct hq__cluster_map *m = malloc(sizeof(*m));
        struct hq__store_ns ns;
        char buf[4096];
        int uneven;

        if (m == NULL || read_map(argv[2], m) != 0)
            return 1;
        if (hq__store_ns_init(&ns, argv[3], (unsigned)strtoul(argv[4], NULL, 10), &e))
            return fail("namespace", e.msg);
        uneven = hq__cluster_layout(m, &ns, buf, sizeof(buf));
        printf("%s\n%s\n", buf, uneven ? "uneven" : "even");
        free(m);
        return 0;
    }
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "sentinel") == 0) {
        struct hq__store_seed master;
        struct hq__store_addr a;

        if (hq__store_parse_url(argc == 5 ? argv[4] : "redis://unused", 2000, &a, &e))
            return fail("url", e.msg);
        if (hq__store_set_sentinels(&a, argv[2], argv[3], &e))
            return fail("sentinels", e.msg);
        if (hq__store_set_sentinel_auth(&a, getenv("HQ_SENTINEL_USER"),
                                        getenv("HQ_SENTINEL_PASSWORD"), &e))
            return fail("sentinel auth", e.msg);
        if (hq__conn_sentinel_lookup(&a, &master, &e) != HQ_OK)
            return fail("sentinel", e.msg);
        printf("%s:%d\n", master.host, master.port);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "ping") == 0) {
        struct hq__store_addr a;
        redisContext *c;
        redisReply *r;

        if (hq__store_parse_url(argv[2], 2000, &a, &e))
            return fail("url", e.msg);
        c = hq__conn_connect_sync(&a, &e);
        if (c == NULL)
            return fail("connect", e.msg);
        r = redisCommand(c, "PING");
        printf("%s\n", r && r->type == REDIS_REPLY_STATUS ? r->str : "?");
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return 0;
    }
    fprintf(stderr, "usage: clustertool keyslot KEY... | slots HOST:PORT | "
                    "layout HOST:PORT NS N | sentinel LIST NAME [URL] | ping URL\n");
    return 2;
}
