/*
 * Functions we do not use: each has a safer form (snprintf, strtoll with
 * checks, strtok_r, localtime_r/gmtime_r). Using one is a compile error.
 */
#ifndef HQ_BANNED_INT_H
#define HQ_BANNED_INT_H

/*
 * The system headers that declare these come first: with _FORTIFY_SOURCE
 * (Debian's package build) glibc defines inline wrappers such as sprintf in
 * <bits/stdio2.h>, and a header read after the macros below would have its
 * definitions turned into nonsense. Included here, they are read once,
 * before the macros, whatever order a .c file includes its headers in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HQ_BANNED(func) sorry_##func##_is_banned_in_hookq

#undef strcpy
#define strcpy(x, y) HQ_BANNED(strcpy)
#undef strcat
#define strcat(x, y) HQ_BANNED(strcat)
#undef sprintf
#define sprintf(...) HQ_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) HQ_BANNED(vsprintf)
#undef strtok
#define strtok(x, y) HQ_BANNED(strtok)
#undef atoi
#define atoi(x) HQ_BANNED(atoi)
#undef atol
#define atol(x) HQ_BANNED(atol)
#undef localtime
#define localtime(x) HQ_BANNED(localtime)
#undef gmtime
#define gmtime(x) HQ_BANNED(gmtime)

#endif /* HQ_BANNED_INT_H */
