/*
 * hookq: the command-line entry point. Dispatches to the subcommands of
 * DESIGN §3.1 (run, serve, work, stats, keys, peek, hold, release, dlq,
 * token, check). Exit status: 0 ok, 1 runtime failure, 2 usage or config.
 */
#include <stdio.h>
#include <string.h>

#include "hookq/hookq.h"

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hookq %s\n", hq_version());
        return 0;
    }
    fprintf(stderr, "usage: hookq COMMAND [-c FILE]\n");
    return 2;
}
