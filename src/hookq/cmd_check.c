/*
 * hookq check [-c FILE]: load the configuration as every other command
 * would (the file of -c, $HOOKQ_CONFIG, ./hookq.ini or /etc/hookq/hookq.ini,
 * then HOOKQ_* variables) and say whether it is valid. Prints "ok: FILE: N
 * events" (or "ok: no file, built-in defaults: 0 events") on stdout and
 * exits 0, or every error as FILE:LINE: [section] key: reason on stderr and
 * exits 2.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#include "banned_int.h"

int
hk_cmd_check(struct hk_cli *cli, int argc, char **argv)
{
    struct hq__config *cfg = NULL;
    static char err[65536];
    int rc, nerr = 0;

    if (argc > 1) {
        fprintf(stderr, "hookq check: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    rc = hq__config_load(cli->config_path, NULL, &cfg, err, sizeof(err));
    if (rc != HQ_OK) {
        for (const char *p = err; *p; p++)
            nerr += *p == '\n';
        fputs(err, stderr);
        if (rc == HQ_ECONFIG)
            fprintf(stderr, "hookq check: %d error%s\n", nerr,
                    nerr == 1 ? "" : "s");
        return rc == HQ_ENOMEM ? 1 : 2;
    }
    if (cfg->admin.listen.text != NULL && cfg->admin.token == NULL) {
        const char *host = cfg->admin.listen.host;
        if (strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0 &&
            strcmp(host, "localhost") != 0)
            fprintf(stderr,
                    "warning: [admin] listen %s is not a loopback "
                    "address and [admin] token is unset: anyone who reaches "
                    "it can use the admin API\n",
                    cfg->admin.listen.text);
    }
    if (cfg->nevents == 0)
        fprintf(stderr, "warning: no [event CODE] section: every webhook "
                        "will be answered 422 unknown_code\n");
    if (cfg->path != NULL)
        printf("ok: %s: %zu event%s\n", cfg->path, cfg->nevents,
               cfg->nevents == 1 ? "" : "s");
    else
        printf("ok: no file, built-in defaults: %zu events\n", cfg->nevents);
    hq__config_free(cfg);
    return 0;
}
