/*
 * Functions we do not use: each has a safer form (snprintf, strtoll with
 * checks, strtok_r, localtime_r/gmtime_r). Using one is a compile error.
 */
#ifndef HQ_BANNED_INT_H
#define HQ_BANNED_INT_H

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
