# Turns one file into a C array: `const char SYMBOL[]` (NUL-terminated) and
# `const size_t SYMBOL_len`. Used for the admin dashboard's page.
# Run with -DIN=<file> -DOUT=<file.c> -DSYMBOL=<name>.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(name ${IN} NAME)
set(out "/* Generated from ${name} by cmake/embed_file.cmake. */\n#include <stddef.h>\n\n")
string(APPEND out "const char ${SYMBOL}[] = {${bytes}0x00};\n")
string(APPEND out "const size_t ${SYMBOL}_len = sizeof(${SYMBOL}) - 1;\n")
file(WRITE ${OUT}.tmp "${out}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
