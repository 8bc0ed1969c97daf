/*
 * dashboard.c -- see dashboard.h.  The page is console/dashboard.html,
 * compiled in as one byte array (console/embed.cmake writes
 * dashboard_html.h at build time), so the binary has no file to find at
 * run time.
 */
#include "dashboard.h"

#include "dashboard_html.h"
