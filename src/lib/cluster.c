/*
 * Redis Cluster routing, the pure part: key slots, the slot map, and
 * reading redirections. See cluster_int.h for the contract.
 *
 * DESIGN: hookq puts every key of a shard under one hash tag, "{ns:S}", so
 * one shard is one slot and one script call touches one node. The
 * connection layer keeps a map slot → master, filled from CLUSTER SLOTS
 * (read at start and after every MOVED or disconnect), and sends a shard's
 * calls to the master of its slot. The map holds masters only: replicas
 * are never written to, and hookq reads what it writes.
 *
 * A redirection names what the client must do; this file only reads it.
 * MOVED means the slot has a new owner for good; ASK that this one command
 * should go, after ASKING, to the node importing the slot. TRYAGAIN,
 * CLUSTERDOWN and LOADING are waited out; READONLY and MASTERDOWN mean we
 * reached a replica, so the master must be found again.
 *
 * CRC16 is the XMODEM variant (polynomial 0x1021, initial value 0), as in
 * Redis's crc16.c; it is computed bitwise here, which is fast enough for
 * the few keys per call that ask for it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

uint16_t
hq__cluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned
hq__cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);

        if (close && close > open + 1)
            return hq__cluster_crc16(open + 1, (size_t)(close - open - 1)) &
                   (HQ_CLUSTER_SLOTS - 1);
    }
    return hq__cluster_crc16(key, len) & (HQ_CLUSTER_SLOTS - 1);
}

unsigned
hq__cluster_shard_slot(const struct hq__store_ns *ns, unsigned shard)
{
    char prefix[HQ_PREFIX_MAX];
    size_t n = hq__store_prefix(ns, shard, prefix, sizeof(prefix));

    return hq__cluster_keyslot(prefix, n);
}

/* ------------------------------------------------------------------------ */
/* The slot map.                                                             */

void
hq__cluster_map_init(struct hq__cluster_map *m)
{
    m->nnodes = 0;
    memset(m->slot_node, 0, sizeof(m->slot_node));
}

/* The index of host:port in `m`, added when new; -1 when full or too long. */
static int
node_index(struct hq__cluster_map *m, const char *host, size_t hostlen,
           int port)
{
    for (unsigned i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hostlen &&
            memcmp(m->nodes[i].host, host, hostlen) == 0)
            return (int)i;
    if (m->nnodes >= HQ_CLUSTER_NODES_MAX ||
        hostlen >= sizeof(m->nodes[0].host))
        return -1;
    memcpy(m->nodes[m->nnodes].host, host, hostlen);
    m->nodes[m->nnodes].host[hostlen] = '\0';
    m->nodes[m->nnodes].port = port;
    return (int)m->nnodes++;
}

static int
slots_fail(struct hq__cluster_map *m, struct hq__err *err, int rc,
           const char *why, size_t entry)
{
    hq__cluster_map_init(m);
    return hq__err_set(err, rc, "cluster slots: entry %zu: %s", entry, why);
}

int
hq__cluster_map_from_slots(struct hq__cluster_map *m, const redisReply *r,
                           const char *asked_host, struct hq__err *err)
{
    hq__cluster_map_init(m);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return hq__err_set(err, HQ_EPROTO,
                           "cluster slots: the answer is not a list");
    if (r->elements == 0)
        return hq__err_set(err, HQ_EPROTO,
                           "cluster slots: no slot is served (is the cluster "
                           "created?)");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *master, *h, *p;
        const char *host;
        size_t hostlen;
        int idx;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return slots_fail(m, err, HQ_EPROTO,
                              "expected [start, end, master, replicas...]", i);
        if (e->element[0]->integer < 0 ||
            e->element[1]->integer >= HQ_CLUSTER_SLOTS ||
            e->element[0]->integer > e->element[1]->integer)
            return slots_fail(m, err, HQ_EPROTO, "slot range out of 0..16383",
                              i);
        master = e->element[2];
        if (master->type != REDIS_REPLY_ARRAY || master->elements < 2)
            return slots_fail(m, err, HQ_EPROTO,
                              "expected the master as [host, port, ...]", i);
        h = master->element[0];
        p = master->element[1];
        if ((h->type != REDIS_REPLY_STRING && h->type != REDIS_REPLY_NIL) ||
            p->type != REDIS_REPLY_INTEGER || p->integer < 1 ||
            p->integer > 65535)
            return slots_fail(m, err, HQ_EPROTO,
                              "expected the master as [host, port, ...]", i);
        /* An unknown endpoint: the host we asked, with the port given. */
        if (h->type == REDIS_REPLY_NIL || h->len == 0 ||
            (h->len == 1 && h->str[0] == '?')) {
            host = asked_host;
            hostlen = strlen(asked_host);
        } else {
            host = h->str;
            hostlen = h->len;
        }
        idx = node_index(m, host, hostlen, (int)p->integer);
        if (idx < 0)
            return slots_fail(m, err, HQ_EINVAL,
                              "too many masters, or a host name too long", i);
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer;
             s++)
            m->slot_node[s] = (uint8_t)(idx + 1);
    }
    return HQ_OK;
}

const struct hq__cluster_node *
hq__cluster_map_node(const struct hq__cluster_map *m, unsigned slot)
{
    if (slot >= HQ_CLUSTER_SLOTS || m->slot_node[slot] == 0)
        return NULL;
    return &m->nodes[m->slot_node[slot] - 1];
}

int
hq__cluster_map_set(struct hq__cluster_map *m, unsigned slot, const char *host,
                    int port)
{
    int idx;

    if (slot >= HQ_CLUSTER_SLOTS || port < 1 || port > 65535)
        return HQ_EINVAL;
    idx = node_index(m, host, strlen(host), port);
    if (idx < 0)
        return HQ_EINVAL;
    m->slot_node[slot] = (uint8_t)(idx + 1);
    return HQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Redirections.                                                             */

static int
starts_with_word(const char *msg, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && memcmp(msg, word, n) == 0 && (len == n || msg[n] == ' ');
}

/* "SLOT HOST:PORT" (host may be empty, or an IPv6 address with colons). */
static int
parse_target(const char *s, size_t len, struct hq__redirect *out)
{
    const char *end = s + len, *sp = memchr(s, ' ', len), *colon = NULL;
    int64_t v;

    if (sp == NULL || hq__parse_decimal(s, (size_t)(sp - s), &v) != 0 ||
        v >= HQ_CLUSTER_SLOTS)
        return -1;
    out->slot = (unsigned)v;
    s = sp + 1;
    for (const char *q = s; q < end; q++) {
        if (*q == ' ')
            return -1;
        if (*q == ':')
            colon = q;
    }
    if (colon == NULL || hq__parse_decimal(colon + 1, (size_t)(end - colon - 1),
                                           &v) != 0 ||
        v < 1 || v > 65535)
        return -1;
    out->port = (int)v;
    if ((size_t)(colon - s) >= sizeof(out->host))
        return -1;
    memcpy(out->host, s, (size_t)(colon - s));
    out->host[colon - s] = '\0';
    return 0;
}

enum hq__redirect_kind
hq__cluster_redirect_parse(const char *msg, size_t len,
                           struct hq__redirect *out)
{
    static const struct {
        const char *word;
        enum hq__redirect_kind kind;
    } words[] = {
        {"TRYAGAIN", HQ_REDIRECT_TRYAGAIN},
        {"CLUSTERDOWN", HQ_REDIRECT_CLUSTERDOWN},
        {"READONLY", HQ_REDIRECT_READONLY},
        {"LOADING", HQ_REDIRECT_LOADING},
        {"MASTERDOWN", HQ_REDIRECT_MASTERDOWN},
    };

    memset(out, 0, sizeof(*out));
    if (starts_with_word(msg, len, "MOVED") || starts_with_word(msg, len, "ASK")) {
        size_t skip = msg[1] == 'O' ? 6 : 4;

        if (len <= skip || parse_target(msg + skip, len - skip, out) != 0) {
            memset(out, 0, sizeof(*out));
            return out->kind = HQ_REDIRECT_NONE;
        }
        return out->kind = msg[1] == 'O' ? HQ_REDIRECT_MOVED : HQ_REDIRECT_ASK;
    }
    for (size_t i = 0; i < HQ_ARRAY_SIZE(words); i++)
        if (starts_with_word(msg, len, words[i].word))
            return out->kind = words[i].kind;
    return out->kind = HQ_REDIRECT_NONE;
}

/* ------------------------------------------------------------------------ */
/* How the shards fall on the masters.                                       */

/* Append to buf[*off..size), keeping the text terminated; -1 once full. */
static int
append(char *buf, size_t size, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
append(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off >= size)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, size - *off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *off) {
        /* Cut short: end in "..." where it fits. */
        if (size >= 4)
            memcpy(buf + size - 4, "...", 4);
        *off = size;
        return -1;
    }
    *off += (size_t)n;
    return 0;
}

int
hq__cluster_layout(const struct hq__cluster_map *m,
                   const struct hq__store_ns *ns, char *buf, size_t size)
{
    unsigned counts[HQ_CLUSTER_NODES_MAX + 1] = {0};
    size_t off = 0;
    int unbalanced = 0;
    uint8_t *owner; /* shard → slot_node of its slot */

    if (size == 0)
        return 0;
    buf[0] = '\0';
    owner = malloc(ns->shards);
    if (owner == NULL)
        return 0;
    for (unsigned s = 0; s < ns->shards; s++)
        counts[owner[s] = m->slot_node[hq__cluster_shard_slot(ns, s)]]++;
    /* Per master (then "no master" last), the shards it holds. */
    for (unsigned k = 1; k <= m->nnodes + 1; k++) {
        unsigned idx = k <= m->nnodes ? k : 0, sep = 0;

        if (counts[idx] == 0)
            continue;
        append(buf, size, &off, "%sshard%s ", off ? "; " : "",
               counts[idx] > 1 ? "s" : "");
        for (unsigned s = 0; s < ns->shards; s++)
            if (owner[s] == idx)
                append(buf, size, &off, "%s%u", sep++ ? "," : "", s);
        if (idx)
            append(buf, size, &off, " → %s:%d", m->nodes[idx - 1].host,
                   m->nodes[idx - 1].port);
        else
            append(buf, size, &off, " → no master");
    }
    for (unsigned k = 1; k <= m->nnodes; k++)
        if (m->nnodes && (double)counts[k] > 2.0 * ns->shards / m->nnodes)
            unbalanced = 1;
    free(owner);
    return unbalanced;
}
