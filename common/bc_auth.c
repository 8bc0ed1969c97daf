/*
 * bc_auth.c -- see bc_auth.h.
 *
 * LOCKING
 *   auth->lock (a rwlock) guards auth->secret: checks and bc_auth_current
 *   hold it for reading, bc_auth_reload for writing only while it swaps
 *   the new set in (the file is read and parsed before).
 */
#include "bc_auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_secret.h"

struct bc_auth {
    char *source;              /* the file, or the name of the text */
    bool reloadable;
    pthread_rwlock_t lock;
    bc_secret_t secret;
};

static bc_status_t
auth_new(const char *source, bool reloadable, bc_secret_t *secret, bc_auth_t **out)
{
    bc_auth_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->source = strdup(source)) == NULL) {
        free(a);
        bc_secret_clear(secret);
        return BC_ENOMEM;
    }
    a->reloadable = reloadable;
    pthread_rwlock_init(&a->lock, NULL);
    a->secret = *secret;
    memset(secret, 0, sizeof(*secret));
    *out = a;
    return BC_OK;
}

bc_status_t
bc_auth_open(const char *path, bc_auth_t **out, char *err, size_t errlen)
{
    bc_secret_t s;
    *out = NULL;
    bc_status_t st = bc_secret_load(path, &bc_secret_rules_token, &s, err, errlen);
    if (st != BC_OK) return st;
    return auth_new(path, true, &s, out);
}

bc_status_t
bc_auth_from_text(const char *name, const char *text, bc_auth_t **out, char *err, size_t errlen)
{
    bc_secret_t s;
    *out = NULL;
    bc_status_t st = bc_secret_parse(name, text, strlen(text), &bc_secret_rules_token, &s, err,
                                     errlen);
    if (st != BC_OK) return st;
    return auth_new(name, false, &s, out);
}

bc_status_t
bc_auth_reload(bc_auth_t *auth, char *err, size_t errlen)
{
    bc_secret_t s, old;
    if (auth == NULL || !auth->reloadable) return BC_OK;
    bc_status_t st = bc_secret_load(auth->source, &bc_secret_rules_token, &s, err, errlen);
    if (st != BC_OK) return st;
    pthread_rwlock_wrlock(&auth->lock);
    old = auth->secret;
    auth->secret = s;
    pthread_rwlock_unlock(&auth->lock);
    bc_secret_clear(&old);
    return BC_OK;
}

void
bc_auth_free(bc_auth_t *auth)
{
    if (auth == NULL) return;
    bc_secret_clear(&auth->secret);
    pthread_rwlock_destroy(&auth->lock);
    free(auth->source);
    free(auth);
}

const char *
bc_auth_source(const bc_auth_t *auth)
{
    return auth != NULL ? auth->source : "";
}

bool
bc_auth_current(bc_auth_t *auth, char *buf, size_t buflen)
{
    bool ok = false;
    if (auth == NULL || buflen == 0) return false;
    pthread_rwlock_rdlock(&auth->lock);
    if (auth->secret.count > 0 && auth->secret.len[0] < buflen) {
        memcpy(buf, auth->secret.value[0], auth->secret.len[0] + 1);
        ok = true;
    }
    pthread_rwlock_unlock(&auth->lock);
    return ok;
}

static bool
is_token68_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

bool
bc_auth_parse_bearer(const char *h, size_t len, const char **token, size_t *token_len)
{
    static const char scheme[] = "bearer";
    size_t n = sizeof(scheme) - 1, i;
    if (h == NULL || len <= n || strncasecmp(h, scheme, n) != 0 || h[n] != ' ') return false;
    i = n;
    while (i < len && h[i] == ' ') i++;
    size_t start = i;
    while (i < len && is_token68_char((unsigned char)h[i])) i++;
    if (i == start) return false;   /* a token starts with a token68 character, not '=' */
    while (i < len && h[i] == '=') i++;
    size_t end = i;
    while (i < len && (h[i] == ' ' || h[i] == '\t')) i++;
    if (i != len) return false;
    *token = h + start;
    *token_len = end - start;
    return true;
}

bc_auth_result_t
bc_auth_check(bc_auth_t *auth, const char *authorization)
{
    const char *tok;
    size_t n;
    if (authorization == NULL) return BC_AUTH_MISSING;
    if (!bc_auth_parse_bearer(authorization, strlen(authorization), &tok, &n)) {
        return BC_AUTH_MALFORMED;
    }
    if (auth == NULL) return BC_AUTH_WRONG;
    pthread_rwlock_rdlock(&auth->lock);
    bool ok = bc_secret_match(&auth->secret, tok, n);
    pthread_rwlock_unlock(&auth->lock);
    return ok ? BC_AUTH_OK : BC_AUTH_WRONG;
}

const char *
bc_auth_result_str(bc_auth_result_t r)
{
    switch (r) {
    case BC_AUTH_OK: return "ok";
    case BC_AUTH_MISSING:
        return "authentication required: send Authorization: Bearer <admin token>";
    case BC_AUTH_MALFORMED:
        return "malformed Authorization header: expected Bearer <admin token>";
    case BC_AUTH_WRONG: return "the admin token presented is not valid";
    }
    return "authentication failed";
}

/* "scheme://authority" -> the authority (host[:port]), or NULL. */
static const char *
origin_authority(const char *origin, size_t *len)
{
    const char *p = strstr(origin, "://");
    if (p == NULL) return NULL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    if (n == 0 || p[n] != '\0') return NULL;   /* an Origin has no path */
    *len = n;
    return p;
}

const char *
bc_auth_cross_site(const char *sec_fetch_site, const char *origin, const char *host)
{
    if (sec_fetch_site != NULL) {
        if (strcasecmp(sec_fetch_site, "cross-site") == 0) {
            return "cross-site request refused (Sec-Fetch-Site: cross-site)";
        }
        if (strcasecmp(sec_fetch_site, "same-site") == 0) {
            return "request from another origin refused (Sec-Fetch-Site: same-site)";
        }
        if (strcasecmp(sec_fetch_site, "same-origin") != 0 &&
            strcasecmp(sec_fetch_site, "none") != 0) {
            return "request refused: unknown Sec-Fetch-Site";
        }
    }
    if (origin != NULL) {
        size_t n;
        const char *auth = origin_authority(origin, &n);
        if (strcmp(origin, "null") == 0) return "request from an opaque origin refused (Origin: null)";
        if (auth == NULL) return "request refused: malformed Origin";
        if (host == NULL || strlen(host) != n || strncasecmp(auth, host, n) != 0) {
            return "cross-origin request refused (Origin does not match Host)";
        }
    }
    return NULL;
}

bool
bc_auth_host_is_loopback(const char *host)
{
    char name[256];
    if (host == NULL) return true;
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof(name)) return false;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (close == NULL) return false;
        size_t k = (size_t)(close - host - 1);
        if (close[1] != '\0' && close[1] != ':') return false;
        memcpy(name, host + 1, k);
        name[k] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    const char *colon = strchr(host, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) return false;  /* bare IPv6: malformed */
    size_t k = colon != NULL ? (size_t)(colon - host) : n;
    memcpy(name, host, k);
    name[k] = '\0';
    if (k > 0 && name[k - 1] == '.') name[--k] = '\0';   /* "localhost." */
    if (strcasecmp(name, "localhost") == 0) return true;
    if (k > 10 && strcasecmp(name + k - 10, ".localhost") == 0) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    return false;
}

bool
bc_auth_media_type_in(const char *content_type, const char *allowed)
{
    if (content_type == NULL || allowed == NULL) return false;
    const char *a = content_type;
    while (*a == ' ' || *a == '\t') a++;
    size_t n = strcspn(a, ";");
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t')) n--;
    if (n == 0) return false;
    for (const char *p = allowed; *p != '\0';) {
        while (*p == ' ' || *p == ',') p++;
        size_t k = strcspn(p, ", ");
        if (k == n && strncasecmp(p, a, n) == 0) return true;
        p += k;
    }
    return false;
}

bool
bc_auth_sockaddr_is_loopback(const struct sockaddr *sa)
{
    if (sa == NULL) return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}
