/*
 * Placeholders for the admin commands until src/hookq/cmd_admin.c lands
 * (the admin work deletes this file). Each says so and exits 1.
 */
#include <stdio.h>

#include "commands.h"

static int
not_yet(const char *name)
{
    fprintf(stderr, "hookq %s: not implemented yet\n", name);
    return 1;
}

int hq_cmd_stats(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("stats"); }
int hq_cmd_keys(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("keys"); }
int hq_cmd_peek(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("peek"); }
int hq_cmd_hold(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("hold"); }
int hq_cmd_release(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("release"); }
int hq_cmd_dlq(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("dlq"); }
int hq_cmd_token(struct hq_cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return not_yet("token"); }
