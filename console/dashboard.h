/*
 * dashboard.h -- the console's web dashboard: one self-contained HTML page
 * (no external assets) that polls /v1/cluster and /v1/tables and draws the
 * groups and the bucket map.  When the API answers 401 it asks for the
 * admin token once, keeps it in sessionStorage (this tab only, gone when
 * it closes) and sends it as "Authorization: Bearer" (docs/security.md).
 */
#ifndef BC_CONSOLE_DASHBOARD_H
#define BC_CONSOLE_DASHBOARD_H

extern const char bc_dashboard_html[];

#endif
