/*
 * The Redis scripts of src/lib/scripts/, embedded at build time by
 * cmake/embed_scripts.cmake. Each does one whole state transition.
 */
#ifndef HQ_SCRIPTS_INT_H
#define HQ_SCRIPTS_INT_H

#include <stddef.h>

struct hq__script {
    const char *name; /* file name without .lua; NULL ends the table */
    const char *src;
    size_t len;
};

/* Every embedded script, ended by an entry whose name is NULL. */
extern const struct hq__script hq__scripts[];

#endif /* HQ_SCRIPTS_INT_H */
