/*
 * How the commands report failure and progress (commands.h).
 *
 * DESIGN: with --json a command's stdout is one JSON document, or nothing
 * when it fails; its error is then one JSON object on stderr,
 * {"error": CODE, "detail": TEXT}, so that a script can read stdout
 * blindly and still learn why from stderr and the exit status. Without
 * --json errors are one line, "hookq CMD: TEXT". Progress of long
 * operations goes to stderr too, never to stdout.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "utf8_int.h"

#include "banned_int.h"

void
hk_cli_error_text(const struct hk_cli *cli, const char *code, const char *detail)
{
    if (cli != NULL && cli->json) {
        char *clean = hq__utf8_sanitize(detail, strlen(detail), NULL);
        json_t *o = json_pack("{ss ss}", "error", code, "detail",
                              clean ? clean : "out of memory");
        char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (js != NULL)
            fprintf(stderr, "%s\n", js);
        else
            fprintf(stderr, "{\"error\":\"%s\",\"detail\":\"out of memory\"}\n",
                    code);
        free(js);
        json_decref(o);
        free(clean);
        return;
    }
    if (cli != NULL && cli->cmd != NULL)
        fprintf(stderr, "hookq %s: %s\n", cli->cmd, detail);
    else
        fprintf(stderr, "hookq: %s\n", detail);
}

void
hk_cli_error(const struct hk_cli *cli, const char *code, const char *fmt, ...)
{
    char detail[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    hk_cli_error_text(cli, code, detail);
}

const char *
hk_cli_error_code(int rc)
{
    switch (rc) {
    case HQ_ENOTFOUND:
        return "not_found";
    case HQ_ESTORE:
        return "redis";
    case HQ_EINVAL:
        return "invalid";
    case HQ_ECONFIG:
        return "config";
    case HQ_ENOMEM:
        return "out_of_memory";
    case HQ_EPROTO:
        return "protocol";
    default:
        return "failed";
    }
}

int
hk_cli_wants_json(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    }
    return 0;
}
