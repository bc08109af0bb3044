/*
 * The Redis store: addresses, key names, and the embedded scripts' calls.
 * See store_int.h for the contract. No I/O.
 *
 * Scripts run by EVALSHA; their SHA1 is computed here once (OpenSSL), so a
 * call costs one round trip and sends no script text. When Redis answers
 * NOSCRIPT (it restarted, or SCRIPT FLUSH), the connection layer sends the
 * same call again as EVAL (hq__store_eval_cmd() with `use_src`), which also
 * caches the script for the next EVALSHA. A script is deterministic in its
 * effects, so sending it again after NOSCRIPT cannot apply it twice:
 * NOSCRIPT means it did not run.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "scripts_int.h"
#include "store_int.h"

#define MAX_SCRIPTS 64
#define DEFAULT_TIMEOUT_MS 5000

static char script_shas[MAX_SCRIPTS][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static void
compute_shas(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];

    for (size_t i = 0; hq__scripts[i].name && i < MAX_SCRIPTS; i++) {
        SHA1((const unsigned char *)hq__scripts[i].src, hq__scripts[i].len, md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            script_shas[i][2 * j] = hex[md[j] >> 4];
            script_shas[i][2 * j + 1] = hex[md[j] & 15];
        }
        script_shas[i][40] = '\0';
    }
}

static int
script_index(const char *name)
{
    for (int i = 0; hq__scripts[i].name && i < MAX_SCRIPTS; i++)
        if (strcmp(hq__scripts[i].name, name) == 0)
            return i;
    return -1;
}

const struct hq__script *
hq__store_script(const char *name)
{
    int i = script_index(name);
    return i < 0 ? NULL : &hq__scripts[i];
}

const char *
hq__store_script_sha(const char *name)
{
    int i = script_index(name);

    if (i < 0)
        return NULL;
    pthread_once(&shas_once, compute_shas);
    return script_shas[i];
}

/* ------------------------------------------------------------------------ */
/* Addresses and names.                                                      */

/* A decimal of at most 9 digits in [lo, hi]: 0 with `*out`, or -1. */
static int
parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    int64_t v;

    if (n > 9 || hq__parse_decimal(s, n, &v) != 0 || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int
copy_part(char *dst, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int
hq__store_parse_hostports(const char *list, size_t len, const char *what,
                          int need_port, struct hq__store_seed *out,
                          unsigned *n, struct hq__err *err)
{
    const char *p = list, *end = list + len;
    int several = memchr(list, ',', len) != NULL;

    *n = 0;
    if (len == 0)
        return hq__err_set(err, HQ_EINVAL, "%s: no host", what);
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        struct hq__store_seed *sd;

        if (*n == HQ_SEEDS_MAX)
            return hq__err_set(err, HQ_EINVAL, "%s: more than %d hosts", what,
                               HQ_SEEDS_MAX);
        sd = &out[*n];
        sd->port = 6379;
        if (colon) {
            if (parse_int(colon + 1, (size_t)(stop - colon - 1), 1, 65535,
                          &sd->port))
                return hq__err_set(err, HQ_EINVAL, "%s: bad port%s%.*s%s",
                                   what, several ? " in '" : "",
                                   several ? (int)(stop - p) : 0, p,
                                   several ? "'" : "");
        } else if (need_port) {
            return hq__err_set(err, HQ_EINVAL,
                               "%s: '%.*s' needs a port (host:port)", what,
                               (int)(stop - p), p);
        } else {
            colon = stop;
        }
        if (colon == p)
            return hq__err_set(err, HQ_EINVAL, "%s: no host in '%.*s'", what,
                               (int)(stop - p), p);
        if (memchr(p, ' ', (size_t)(colon - p)) != NULL)
            return hq__err_set(err, HQ_EINVAL, "%s: space in host '%.*s'",
                               what, (int)(colon - p), p);
        if (copy_part(sd->host, sizeof(sd->host), p, (size_t)(colon - p)))
            return hq__err_set(err, HQ_EINVAL, "%s: host too long", what);
        (*n)++;
        if (comma == NULL)
            return HQ_OK;
        p = comma + 1;
    }
}

int
hq__store_parse_url(const char *url, int timeout_ms,
                    struct hq__store_addr *addr, struct hq__err *err)
{
    const char *p, *end, *at, *slash, *colon;
    char what[300];

    memset(addr, 0, sizeof(*addr));
    addr->port = 6379;
    addr->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    if (url == NULL || *url == '\0')
        return hq__err_set(err, HQ_EINVAL, "empty redis url");

    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        size_t n = q ? (size_t)(q - (url + 7)) : strlen(url + 7);

        if (n == 0 || url[7] != '/')
            return hq__err_set(err, HQ_EINVAL,
                               "redis url '%s': unix:// needs an absolute path",
                               url);
        if (copy_part(addr->unix_path, sizeof(addr->unix_path), url + 7, n))
            return hq__err_set(err, HQ_EINVAL, "redis url '%s': path too long",
                               url);
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 ||
                parse_int(q + 4, strlen(q + 4), 0, 1 << 20, &addr->db))
                return hq__err_set(err, HQ_EINVAL,
                                   "redis url '%s': expected '?db=N' after the path",
                                   url);
        }
        return HQ_OK;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return hq__err_set(err, HQ_EINVAL,
                           "redis url '%s': expected redis://host:port/db or unix:///path",
                           url);
    p = url + 8;
    end = p + strlen(p);
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = end;
    /* The last '@' before the path: a password may hold '@'. */
    at = NULL;
    for (const char *q = p; q < slash; q++)
        if (*q == '@')
            at = q;
    if (at) {
        /* user:password@, :password@, or password@ (no ACL user). */
        colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon && copy_part(addr->user, sizeof(addr->user), p,
                               (size_t)(colon - p)))
            return hq__err_set(err, HQ_EINVAL, "redis url: user too long");
        if (copy_part(addr->password, sizeof(addr->password), pw,
                      (size_t)(at - pw)))
            return hq__err_set(err, HQ_EINVAL, "redis url: password too long");
        if (addr->user[0] && addr->password[0] == '\0')
            return hq__err_set(err, HQ_EINVAL,
                               "redis url: user '%s' needs a password "
                               "(redis://user:password@host)",
                               addr->user);
        p = at + 1;
    }
    /* Name the url without its password in messages. */
    snprintf(what, sizeof(what), "redis url '%s%.*s'",
             at ? "redis://…@" : "redis://", (int)(end - p), p);
    if (hq__store_parse_hostports(p, (size_t)(slash - p), what, 0, addr->seeds,
                                  &addr->nseeds, err))
        return HQ_EINVAL;
    memcpy(addr->host, addr->seeds[0].host, sizeof(addr->host));
    addr->port = addr->seeds[0].port;
    addr->cluster = addr->nseeds > 1;
    if (slash < end && slash + 1 < end &&
        parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20, &addr->db))
        return hq__err_set(err, HQ_EINVAL,
                           "%s: database must be a number", what);
    if (addr->nseeds > 1 && addr->db != 0)
        return hq__err_set(err, HQ_EINVAL,
                           "%s: several hosts mean a Redis Cluster, which has "
                           "only database 0",
                           what);
    return HQ_OK;
}

int
hq__store_set_sentinels(struct hq__store_addr *addr, const char *list,
                        const char *master, struct hq__err *err)
{
    if (master == NULL || *master == '\0')
        master = "hookq";
    addr->nsentinels = 0;
    if (list == NULL || *list == '\0')
        return HQ_OK;
    if (addr->unix_path[0] || addr->cluster)
        return hq__err_set(err, HQ_EINVAL,
                           "sentinels cannot go with a unix:// url or a cluster");
    if (strlen(master) >= sizeof(addr->sentinel_master))
        return hq__err_set(err, HQ_EINVAL, "sentinel_master '%s' is too long",
                           master);
    memcpy(addr->sentinel_master, master, strlen(master) + 1);
    return hq__store_parse_hostports(list, strlen(list), "sentinels", 1,
                                     addr->sentinels, &addr->nsentinels, err);
}

int
hq__store_set_sentinel_auth(struct hq__store_addr *addr, const char *user,
                            const char *password, struct hq__err *err)
{
    if (user == NULL)
        user = "";
    if (password == NULL)
        password = "";
    addr->sentinel_user[0] = '\0';
    addr->sentinel_password[0] = '\0';
    if (user[0] == '\0' && password[0] == '\0')
        return HQ_OK;
    if (addr->nsentinels == 0)
        return hq__err_set(err, HQ_EINVAL,
                           "sentinel_password and sentinel_user need sentinels: "
                           "they are sent to the Sentinels only");
    if (password[0] == '\0')
        return hq__err_set(err, HQ_EINVAL,
                           "sentinel_user '%s' needs a sentinel_password", user);
    if (strlen(user) >= sizeof(addr->sentinel_user))
        return hq__err_set(err, HQ_EINVAL, "sentinel_user is too long (at most %zu bytes)",
                           sizeof(addr->sentinel_user) - 1);
    if (strlen(password) >= sizeof(addr->sentinel_password))
        return hq__err_set(err, HQ_EINVAL,
                           "sentinel_password is too long (at most %zu bytes)",
                           sizeof(addr->sentinel_password) - 1);
    memcpy(addr->sentinel_user, user, strlen(user) + 1);
    memcpy(addr->sentinel_password, password, strlen(password) + 1);
    return HQ_OK;
}

int
hq__store_ns_init(struct hq__store_ns *ns, const char *name, unsigned shards,
                  struct hq__err *err)
{
    if (name == NULL || *name == '\0')
        name = "hookq";
    if (strlen(name) >= sizeof(ns->ns))
        return hq__err_set(err, HQ_EINVAL, "namespace '%s' is too long", name);
    if (strpbrk(name, "{}:\n ") != NULL)
        return hq__err_set(err, HQ_EINVAL,
                           "namespace '%s' must not contain braces, ':', spaces or newlines",
                           name);
    if (shards > HQ_SHARDS_MAX)
        return hq__err_set(err, HQ_EINVAL, "shards = %u: at most %d", shards,
                           HQ_SHARDS_MAX);
    memcpy(ns->ns, name, strlen(name) + 1);
    ns->shards = shards ? shards : 1;
    return HQ_OK;
}

unsigned
hq__store_shard_of(const struct hq__store_ns *ns, const char *customer,
                   size_t len)
{
    uint32_t h = 2166136261u;

    if (ns->shards <= 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)customer[i];
        h *= 16777619u;
    }
    return h % ns->shards;
}

size_t
hq__store_prefix(const struct hq__store_ns *ns, unsigned shard, char *buf,
                 size_t size)
{
    int n = shard == HQ_SHARD_META ? snprintf(buf, size, "{%s:meta}:", ns->ns)
                                   : snprintf(buf, size, "{%s:%u}:", ns->ns, shard);
    return n < 0 ? 0 : (size_t)n;
}

int
hq__store_key_customer(const char *key, size_t keylen, size_t *custlen)
{
    for (size_t i = keylen; i > 0; i--) {
        if (key[i - 1] == ':') {
            if (i == 1 || i == keylen)
                return HQ_EINVAL;
            *custlen = i - 1;
            return HQ_OK;
        }
    }
    return HQ_EINVAL;
}

int
hq__store_eval_cmd(const char *name, int use_src, const char *prefix, int argc,
                   const char **argv, const size_t *argvlen, const char **cmd,
                   size_t *cmdlen)
{
    const struct hq__script *s = hq__store_script(name);

    if (s == NULL || argc < 0)
        return HQ_EINVAL;
    cmd[0] = use_src ? "EVAL" : "EVALSHA";
    cmdlen[0] = strlen(cmd[0]);
    cmd[1] = use_src ? s->src : hq__store_script_sha(name);
    cmdlen[1] = use_src ? s->len : 40;
    cmd[2] = "1";
    cmdlen[2] = 1;
    cmd[3] = prefix;
    cmdlen[3] = strlen(prefix);
    for (int i = 0; i < argc; i++) {
        cmd[4 + i] = argv[i];
        cmdlen[4 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    return HQ_OK;
}

void
hq__store_addr_name(const struct hq__store_addr *a, char *buf, size_t size)
{
    if (a->unix_path[0])
        snprintf(buf, size, "unix://%s", a->unix_path);
    else
        snprintf(buf, size, "%s:%d", a->host, a->port);
}

int
hq__store_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}
