# Turns every src/lib/scripts/NAME.lua into an entry of hq__scripts[] in one
# generated C file, with src/lib/scripts/_prelude.lua (the helpers every
# script shares) put in front of it. Files named _*.lua are not scripts.
# Run with -DDIR=<scripts dir> -DOUT=<file.c>.
file(GLOB scripts ${DIR}/[a-z]*.lua)
list(SORT scripts)
file(READ ${DIR}/_prelude.lua prelude HEX)
set(out "/* Generated from the .lua files of src/lib/scripts by cmake/embed_scripts.cmake. */\n")
string(APPEND out "#include \"scripts_int.h\"\n\n")
set(table "const struct hq__script hq__scripts[] = {\n")
foreach(f ${scripts})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} hex HEX)
  set(hex "${prelude}${hex}")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND out "static const char src_${name}[] = {${bytes}0x00};\n")
  string(APPEND table "    {\"${name}\", src_${name}, sizeof(src_${name}) - 1},\n")
endforeach()
string(APPEND table "    {0, 0, 0},\n};\n")
string(APPEND out "\n${table}")
file(WRITE ${OUT}.tmp "${out}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
