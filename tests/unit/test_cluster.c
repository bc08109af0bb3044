/*
 * Unit tests for cluster.c: key slots (checked against values Redis gives
 * for CLUSTER KEYSLOT), the slot map read from CLUSTER SLOTS replies, the
 * redirection and cluster errors, and the shard layout line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

/* Values from `redis-cli CLUSTER KEYSLOT` (Redis 7.0) and its docs. */
static const struct {
    const char *key;
    unsigned slot;
} slot_rows[] = {
    {"foo", 12182},
    {"bar", 5061},
    {"hello", 866},
    {"", 0},
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"user1000", 3443},
    {"foo{}{bar}", 8363},      /* empty tag: the whole key */
    {"foo{{bar}}zap", 4015},   /* tag "{bar" */
    {"{bar", 4015},            /* no '}': the whole key */
    {"foo{bar}{zap}", 5061},   /* the first tag: "bar" */
    {"{hookq:0}:", 12913},
    {"{hookq:0}:rc", 12913},
    {"{hookq:1}:k:acme:post-create", 8784},
};

static void
test_cluster_keyslot_matches_redis(void **state)
{
    (void)state;
    /* The check value of CRC16/XMODEM, as in Redis's crc16.c tests. */
    assert_int_equal(hq__cluster_crc16("123456789", 9), 0x31C3);
    for (size_t i = 0; i < HQ_ARRAY_SIZE(slot_rows); i++) {
        unsigned s = hq__cluster_keyslot(slot_rows[i].key, strlen(slot_rows[i].key));
        if (s != slot_rows[i].slot)
            fail_msg("keyslot('%s') = %u, want %u", slot_rows[i].key, s,
                     slot_rows[i].slot);
    }
}

static void
test_cluster_a_shard_is_one_slot(void **state)
{
    struct hq__store_ns ns;
    struct hq__err e;

    (void)state;
    assert_int_equal(hq__store_ns_init(&ns, "hookq", 4, &e), HQ_OK);
    assert_int_equal(hq__cluster_shard_slot(&ns, 0), 12913);
    assert_int_equal(hq__cluster_shard_slot(&ns, 1), 8784);
}

/* ---- building replies by hand, as hiredis would hand them over ---- */

static redisReply *
r_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *
r_str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    if (s == NULL) {
        r->type = REDIS_REPLY_NIL;
        return r;
    }
    r->type = REDIS_REPLY_STRING;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *
r_arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    va_list ap;

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static redisReply *
r_node(const char *host, int port, const char *id)
{
    return r_arr(4, r_str(host), r_int(port), r_str(id), r_arr(0));
}

static void
test_cluster_map_reads_cluster_slots(void **state)
{
    struct hq__cluster_map *m = malloc(sizeof(*m));
    struct hq__err e;
    redisReply *r;

    (void)state;
    /* Three masters, one of them with a replica, one with an unknown
     * endpoint ("?" means: the host we asked). */
    r = r_arr(4,
              r_arr(4, r_int(0), r_int(5460), r_node("10.0.0.1", 7000, "a"),
                    r_node("10.0.0.4", 7003, "d")),
              r_arr(3, r_int(5461), r_int(10922), r_node("10.0.0.2", 7001, "b")),
              r_arr(3, r_int(10923), r_int(16000), r_node("?", 7002, "c")),
              r_arr(3, r_int(16001), r_int(16383), r_node("10.0.0.1", 7000, "a")));
    assert_int_equal(hq__cluster_map_from_slots(m, r, "seed.example", &e), HQ_OK);
    assert_int_equal(m->nnodes, 3);
    assert_string_equal(hq__cluster_map_node(m, 0)->host, "10.0.0.1");
    assert_int_equal(hq__cluster_map_node(m, 5460)->port, 7000);
    assert_int_equal(hq__cluster_map_node(m, 5461)->port, 7001);
    assert_string_equal(hq__cluster_map_node(m, 12000)->host, "seed.example");
    assert_int_equal(hq__cluster_map_node(m, 12000)->port, 7002);
    assert_ptr_equal(hq__cluster_map_node(m, 16383), hq__cluster_map_node(m, 0));
    assert_null(hq__cluster_map_node(m, 16384));
    freeReplyObject(r);

    /* A slot no master serves (cluster-require-full-coverage no). */
    r = r_arr(1, r_arr(3, r_int(0), r_int(99), r_node("h", 1, "x")));
    assert_int_equal(hq__cluster_map_from_slots(m, r, "h", &e), HQ_OK);
    assert_non_null(hq__cluster_map_node(m, 99));
    assert_null(hq__cluster_map_node(m, 100));
    freeReplyObject(r);

    /* MOVED: one slot to a new node, and to a known one. */
    assert_int_equal(hq__cluster_map_set(m, 100, "h2", 2), HQ_OK);
    assert_int_equal(m->nnodes, 2);
    assert_string_equal(hq__cluster_map_node(m, 100)->host, "h2");
    assert_int_equal(hq__cluster_map_set(m, 5, "h2", 2), HQ_OK);
    assert_int_equal(m->nnodes, 2);
    assert_int_equal(hq__cluster_map_node(m, 5)->port, 2);
    assert_int_equal(hq__cluster_map_set(m, 16384, "h2", 2), HQ_EINVAL);
    free(m);
}

static void
test_cluster_map_refuses_malformed_replies(void **state)
{
    struct hq__cluster_map *m = malloc(sizeof(*m));
    struct hq__err e;
    redisReply *bad[6];

    (void)state;
    bad[0] = r_str("no");
    bad[1] = r_arr(0);
    bad[2] = r_arr(1, r_arr(3, r_int(0), r_int(16384), r_node("h", 1, "x")));
    bad[3] = r_arr(1, r_arr(3, r_int(9), r_int(3), r_node("h", 1, "x")));
    bad[4] = r_arr(1, r_arr(3, r_int(0), r_int(3), r_node("h", 0, "x")));
    bad[5] = r_arr(1, r_arr(2, r_int(0), r_int(3)));
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad); i++) {
        e.msg[0] = '\0';
        if (hq__cluster_map_from_slots(m, bad[i], "h", &e) == HQ_OK)
            fail_msg("malformed reply %zu accepted", i);
        assert_true(strncmp(e.msg, "cluster slots", 13) == 0);
        assert_int_equal(m->nnodes, 0);
        assert_null(hq__cluster_map_node(m, 0));
        freeReplyObject(bad[i]);
    }
    assert_int_equal(hq__cluster_map_from_slots(m, NULL, "h", &e), HQ_EPROTO);
    free(m);
}

static const struct {
    const char *msg;
    enum hq__redirect_kind kind;
    unsigned slot;
    const char *host;
    int port;
} redirect_rows[] = {
    {"MOVED 3999 127.0.0.1:6381", HQ_REDIRECT_MOVED, 3999, "127.0.0.1", 6381},
    {"ASK 16383 10.1.2.3:7000", HQ_REDIRECT_ASK, 16383, "10.1.2.3", 7000},
    {"MOVED 0 :6380", HQ_REDIRECT_MOVED, 0, "", 6380},
    {"MOVED 12 redis-a.example:6379", HQ_REDIRECT_MOVED, 12, "redis-a.example", 6379},
    {"MOVED 1 ::1:6379", HQ_REDIRECT_MOVED, 1, "::1", 6379},
    {"TRYAGAIN Multiple keys request during rehashing of slot", HQ_REDIRECT_TRYAGAIN, 0, "", 0},
    {"CLUSTERDOWN The cluster is down", HQ_REDIRECT_CLUSTERDOWN, 0, "", 0},
    {"CLUSTERDOWN Hash slot not served", HQ_REDIRECT_CLUSTERDOWN, 0, "", 0},
    {"READONLY You can't write against a read only replica.", HQ_REDIRECT_READONLY, 0, "", 0},
    {"LOADING Redis is loading the dataset in memory", HQ_REDIRECT_LOADING, 0, "", 0},
    {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
     HQ_REDIRECT_MASTERDOWN, 0, "", 0},
    /* Not redirections: the command's own errors, or ones we cannot read. */
    {"ERR unknown command", HQ_REDIRECT_NONE, 0, "", 0},
    {"NOSCRIPT No matching script", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVEDX 1 h:1", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED 16384 h:1", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED -1 h:1", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED 1 h", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED 1 h:0", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED 1 h:65536", HQ_REDIRECT_NONE, 0, "", 0},
    {"MOVED 1 h:1 extra", HQ_REDIRECT_NONE, 0, "", 0},
    {"ASK x h:1", HQ_REDIRECT_NONE, 0, "", 0},
    {"LOADINGX", HQ_REDIRECT_NONE, 0, "", 0},
    {"", HQ_REDIRECT_NONE, 0, "", 0},
};

static void
test_cluster_redirects_are_read_from_error_replies(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(redirect_rows); i++) {
        struct hq__redirect rd;
        const char *msg = redirect_rows[i].msg;
        enum hq__redirect_kind k = hq__cluster_redirect_parse(msg, strlen(msg), &rd);

        if (k != redirect_rows[i].kind || rd.kind != k)
            fail_msg("'%s': kind %d, want %d", msg, k, redirect_rows[i].kind);
        assert_int_equal(rd.slot, redirect_rows[i].slot);
        assert_string_equal(rd.host, redirect_rows[i].host);
        assert_int_equal(rd.port, redirect_rows[i].port);
    }
}

static void
test_cluster_layout_names_each_masters_shards_and_warns_when_uneven(void **state)
{
    struct hq__cluster_map *m = malloc(sizeof(*m));
    struct hq__store_ns ns;
    struct hq__err e;
    char buf[512], small[24];

    (void)state;
    /* The slots of {hookq:0..3} */
    unsigned s0, s1, s2, s3;
    assert_int_equal(hq__store_ns_init(&ns, "hookq", 4, &e), HQ_OK);
    s0 = hq__cluster_shard_slot(&ns, 0);
    s1 = hq__cluster_shard_slot(&ns, 1);
    s2 = hq__cluster_shard_slot(&ns, 2);
    s3 = hq__cluster_shard_slot(&ns, 3);

    hq__cluster_map_init(m);
    hq__cluster_map_set(m, s0, "a", 1);
    hq__cluster_map_set(m, s1, "b", 2);
    hq__cluster_map_set(m, s2, "a", 1);
    hq__cluster_map_set(m, s3, "b", 2);
    assert_int_equal(hq__cluster_layout(m, &ns, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "shards 0,2 → a:1; shards 1,3 → b:2");

    /* One master holds 3 of 4 shards over 3 masters (share 1.33): uneven. */
    hq__cluster_map_set(m, s1, "a", 1);
    hq__cluster_map_set(m, 0, "c", 3); /* no shard is in slot 0 */
    assert_int_equal(hq__cluster_layout(m, &ns, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "shards 0,1,2 → a:1; shard 3 → b:2");

    /* A shard whose slot no master serves. */
    m->slot_node[s3] = 0;
    hq__cluster_layout(m, &ns, buf, sizeof(buf));
    assert_string_equal(buf, "shards 0,1,2 → a:1; shard 3 → no master");

    /* Cut short, still terminated. */
    hq__cluster_layout(m, &ns, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_string_equal(small + sizeof(small) - 4, "...");
    free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_keyslot_matches_redis),
        cmocka_unit_test(test_cluster_a_shard_is_one_slot),
        cmocka_unit_test(test_cluster_map_reads_cluster_slots),
        cmocka_unit_test(test_cluster_map_refuses_malformed_replies),
        cmocka_unit_test(test_cluster_redirects_are_read_from_error_replies),
        cmocka_unit_test(test_cluster_layout_names_each_masters_shards_and_warns_when_uneven),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
