# Turns a file into a C array definition: cmake -DIN=file -DOUT=header
# -DNAME=symbol -P embed.cmake.  The console's dashboard (dashboard.html)
# is compiled in this way, so the binary has no file to find at run time
# and the page stays an ordinary HTML file to edit.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "/* generated from ${IN} by console/embed.cmake: do not edit */\nconst char ${NAME}[] = {\n${bytes}0x00};\n")
