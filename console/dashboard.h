/*
 * dashboard.h -- the console's web dashboard: one self-contained HTML page
 * (console/dashboard.html; no external asset, no CDN) that polls the
 * console's API every two seconds and shows the warnings an operator must
 * not miss, per-group cards (memory used vs limit, ops/s, hit ratio,
 * backups and their lag), live charts of the last minutes (from
 * /v1/stats/history), migrations with their controls (each asks for
 * confirmation), the busiest buckets, the hot keys, and the bucket map;
 * clicking a bucket shows its counters, owners, primary, backups and
 * pending move.  When the API answers
 * 401 it asks for the admin token once, keeps it in sessionStorage (this
 * tab only, gone when it closes) and sends it as "Authorization: Bearer"
 * (docs/security.md).
 */
#ifndef BC_CONSOLE_DASHBOARD_H
#define BC_CONSOLE_DASHBOARD_H

extern const char bc_dashboard_html[];

#endif
