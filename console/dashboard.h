/*
 * dashboard.h -- the console's web dashboard: one self-contained HTML page
 * (no external assets) that polls /v1/cluster and /v1/tables and draws the
 * groups and the bucket map.
 */
#ifndef BC_CONSOLE_DASHBOARD_H
#define BC_CONSOLE_DASHBOARD_H

extern const char bc_dashboard_html[];

#endif
