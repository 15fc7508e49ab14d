# Writes OUT: a C file with every migration as a string, in file-name order.
# Used by migrate.c through `kiln_migrations[]`.
set(body "/* Generated from the migrations folder - do not edit. */\n")
string(APPEND body "#include \"kiln/migrate.h\"\n\n")
string(APPEND body "const struct kiln_migration kiln_migrations[] = {\n")
string(REPLACE "|" ";" FILES "${FILES}")
foreach(f IN LISTS FILES)
  get_filename_component(name ${f} NAME)
  file(READ ${f} sql HEX)
  # Emit the SQL as a byte list so any character survives.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${sql}")
  string(APPEND body "  {\"${name}\", (const char[]){${bytes} 0x00}},\n")
endforeach()
string(APPEND body "  {0, 0}\n};\n")
file(WRITE ${OUT} "${body}")
