/*
 * bc_zk.c -- see bc_zk.h.  The session supervisor, the watch registry and
 * thin synchronous wrappers over the multi-threaded ZooKeeper C client.
 *
 * WATCH REGISTRY
 *   ZooKeeper calls one watcher function with a context pointer; we always
 *   pass the bc_zk itself and keep (path, fn, ctx) registrations in a small
 *   table.  A node event on a path fires and removes every registration for
 *   that path (the owner re-reads and re-arms); a new session clears the
 *   table, because the server forgot those watches.  The table is bounded by
 *   the number of distinct (path, fn, ctx) an owner watches.
 */
#include "bc_zk.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <zookeeper/zookeeper.h>

#include "bc_log.h"
#include "bc_secret.h"
#include "bc_time.h"

#define ZK_DEFAULT_HINT "check the ZooKeeper credentials (--zk-auth-file; docs/security.md)"
#define ZK_NOAUTH_LOG_INTERVAL_MS 5000

/* The process's credentials for bc_zk_open (bc_zk_set_default_auth).
 * LOCKING RULE: default_mu guards the three below. */
static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;
static bool default_has_auth;
static bc_zk_auth_t default_auth;
static char default_hint[256] = ZK_DEFAULT_HINT;

/* An ACL and the strings its entries point at. */
struct bc_zk_acl {
    struct ACL_vector v;
    struct ACL entries[BC_ZK_ACL_MAX];
    char ids[BC_ZK_ACL_MAX][600];
};

typedef struct zk_watch {
    char *path;
    bc_zk_watch_fn fn;
    void *ctx;
} zk_watch_t;

struct bc_zk {
    char *hosts;
    int session_timeout_ms;
    bc_zk_session_fn session_fn;
    void *session_ctx;

    /* lock: guards zh.  Readers: every operation; writer: the supervisor
     * swapping a dead handle for a new one. */
    pthread_rwlock_t lock;
    zhandle_t *zh;

    /* state_mu: guards the fields below and signals state_cv. */
    pthread_mutex_t state_mu;
    pthread_cond_t state_cv;
    int zk_state;              /* last session state seen by the watcher */
    bool state_changed;
    bool stopping;
    bool ever_connected;       /* the current session has connected once */
    bool expired_pending;      /* a new session must be announced */
    pthread_t supervisor;
    bool supervisor_started;

    /* watch_mu: guards the watch registry. */
    pthread_mutex_t watch_mu;
    zk_watch_t *watches;
    size_t nwatches, watches_cap;

    /* Credentials (ACCESS CONTROL): set before the first handle, then
     * read only. */
    bool has_auth;
    bc_zk_auth_t auth;
    char hint[256];
    _Atomic int64_t noauth_logged_ms;  /* when a refusal was last logged */
};

bc_status_t
bc_zk_status(int zrc)
{
    switch (zrc) {
    case ZOK: return BC_OK;
    case ZNONODE: return BC_ENOTFOUND;
    case ZNODEEXISTS: return BC_EEXISTS;
    case ZBADVERSION: return BC_ESTALE;
    case ZNOTEMPTY: return BC_EBUSY;
    case ZBADARGUMENTS: return BC_EINVAL;
    case ZNOAUTH:
    case ZAUTHFAILED: return BC_EACCES;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZCLOSING: return BC_EAGAIN;
    default: return BC_EZK;
    }
}

/* Maps rc; a refusal is logged (rate-limited) with the path and the hint. */
static bc_status_t
zk_result(bc_zk_t *zk, const char *path, int rc)
{
    if (rc == ZNOAUTH || rc == ZAUTHFAILED) {
        int64_t now = bc_time_mono_ms();
        int64_t last = atomic_load_explicit(&zk->noauth_logged_ms, memory_order_relaxed);
        if ((last == 0 || now - last >= ZK_NOAUTH_LOG_INTERVAL_MS) &&
            atomic_compare_exchange_strong(&zk->noauth_logged_ms, &last, now)) {
            log_error("ZooKeeper refused access to %s (%s): %s", path,
                      rc == ZNOAUTH ? "NOAUTH" : "AUTHFAILED", zk->hint);
        }
    }
    return bc_zk_status(rc);
}

/* ---- credentials ---- */

bc_status_t
bc_zk_auth_parse(const char *name, const char *text, bc_zk_auth_t *out, char *err, size_t errlen)
{
    bc_secret_t s;
    memset(out, 0, sizeof(*out));
    bc_status_t st = bc_secret_parse(name, text, strlen(text), &bc_secret_rules_zk, &s, err,
                                     errlen);
    if (st != BC_OK) return st;
    if (s.len[0] >= sizeof(out->cred)) {
        bc_secret_clear(&s);
        return bc_fail(err, errlen, BC_ETOOLARGE, "%s: credentials too long", name);
    }
    memcpy(out->cred, s.value[0], s.len[0] + 1);
    bc_secret_clear(&s);
    return BC_OK;
}

bc_status_t
bc_zk_auth_load(const char *path, bc_zk_auth_t *out, char *err, size_t errlen)
{
    bc_secret_t s;
    memset(out, 0, sizeof(*out));
    bc_status_t st = bc_secret_load(path, &bc_secret_rules_zk, &s, err, errlen);
    if (st != BC_OK) return st;
    if (s.len[0] >= sizeof(out->cred)) {
        bc_secret_clear(&s);
        return bc_fail(err, errlen, BC_ETOOLARGE, "%s: credentials too long", path);
    }
    memcpy(out->cred, s.value[0], s.len[0] + 1);
    bc_secret_clear(&s);
    return BC_OK;
}

void
bc_zk_auth_clear(bc_zk_auth_t *auth)
{
    if (auth != NULL) OPENSSL_cleanse(auth, sizeof(*auth));
}

void
bc_zk_auth_user(const bc_zk_auth_t *auth, char *buf, size_t len)
{
    if (len == 0) return;
    const char *colon = strchr(auth->cred, ':');
    size_t n = colon != NULL ? (size_t)(colon - auth->cred) : strlen(auth->cred);
    if (n >= len) n = len - 1;
    memcpy(buf, auth->cred, n);
    buf[n] = '\0';
}

bc_status_t
bc_zk_digest_id(const bc_zk_auth_t *auth, char *buf, size_t len)
{
    unsigned char sha[SHA_DIGEST_LENGTH];
    char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    char user[520];
    SHA1((const unsigned char *)auth->cred, strlen(auth->cred), sha);
    EVP_EncodeBlock((unsigned char *)b64, sha, SHA_DIGEST_LENGTH);
    bc_zk_auth_user(auth, user, sizeof(user));
    int n = snprintf(buf, len, "%s:%s", user, b64);
    return n < 0 || (size_t)n >= len ? BC_ETOOLARGE : BC_OK;
}

bc_status_t
bc_zk_use_auth_file(const char *path, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '\0') {
        bc_zk_set_default_auth(NULL, "the cluster is secured with ZooKeeper ACLs: give its "
                                     "credentials with --zk-auth-file (docs/security.md)");
        return BC_OK;
    }
    bc_zk_auth_t za;
    bc_status_t st = bc_zk_auth_load(path, &za, err, errlen);
    if (st != BC_OK) return st;
    bc_zk_set_default_auth(&za, "check --zk-auth-file (the cluster's ZooKeeper credentials; "
                                "docs/security.md)");
    bc_zk_auth_clear(&za);
    return BC_OK;
}

void
bc_zk_set_default_auth(const bc_zk_auth_t *auth, const char *hint)
{
    pthread_mutex_lock(&default_mu);
    default_has_auth = auth != NULL;
    if (auth != NULL) default_auth = *auth;
    else bc_zk_auth_clear(&default_auth);
    snprintf(default_hint, sizeof(default_hint), "%s", hint != NULL ? hint : ZK_DEFAULT_HINT);
    pthread_mutex_unlock(&default_mu);
}

bc_status_t
bc_zk_acl_build(const bc_zk_auth_t *const *writers, size_t nwriters,
                const bc_zk_auth_t *const *readers, size_t nreaders, bc_zk_acl_t **out)
{
    *out = NULL;
    if (writers == NULL || nwriters == 0 || nwriters + nreaders > BC_ZK_ACL_MAX ||
        (nreaders > 0 && readers == NULL)) {
        return BC_EINVAL;
    }
    bc_zk_acl_t *acl = calloc(1, sizeof(*acl));
    if (acl == NULL) return BC_ENOMEM;
    for (size_t i = 0; i < nwriters + nreaders; i++) {
        const bc_zk_auth_t *who = i < nwriters ? writers[i] : readers[i - nwriters];
        bc_status_t st = who == NULL ? BC_EINVAL
                                     : bc_zk_digest_id(who, acl->ids[i], sizeof(acl->ids[i]));
        if (st != BC_OK) {
            free(acl);
            return st;
        }
        acl->entries[i] = (struct ACL){i < nwriters ? ZOO_PERM_ALL : ZOO_PERM_READ,
                                       {"digest", acl->ids[i]}};
    }
    acl->v.count = (int32_t)(nwriters + nreaders);
    acl->v.data = acl->entries;
    *out = acl;
    return BC_OK;
}

void
bc_zk_acl_free(bc_zk_acl_t *acl)
{
    free(acl);
}

/* ---- watch registry ---- */

static void
zk_watch_register(bc_zk_t *zk, const char *path, bc_zk_watch_fn fn, void *ctx)
{
    pthread_mutex_lock(&zk->watch_mu);
    for (size_t i = 0; i < zk->nwatches; i++) {
        zk_watch_t *w = &zk->watches[i];
        if (w->fn == fn && w->ctx == ctx && strcmp(w->path, path) == 0) {
            pthread_mutex_unlock(&zk->watch_mu);
            return;
        }
    }
    if (zk->nwatches == zk->watches_cap) {
        size_t cap = zk->watches_cap ? zk->watches_cap * 2 : 16;
        zk_watch_t *grown = realloc(zk->watches, cap * sizeof(*grown));
        if (grown == NULL) {
            pthread_mutex_unlock(&zk->watch_mu);
            log_error("zookeeper: out of memory registering a watch on %s", path);
            return;
        }
        zk->watches = grown;
        zk->watches_cap = cap;
    }
    char *copy = strdup(path);
    if (copy != NULL) {
        zk->watches[zk->nwatches++] = (zk_watch_t){copy, fn, ctx};
    }
    pthread_mutex_unlock(&zk->watch_mu);
}

static void
zk_watch_clear(bc_zk_t *zk)
{
    pthread_mutex_lock(&zk->watch_mu);
    for (size_t i = 0; i < zk->nwatches; i++) free(zk->watches[i].path);
    zk->nwatches = 0;
    pthread_mutex_unlock(&zk->watch_mu);
}

/* Removes the registrations for path and calls them, outside watch_mu. */
static void
zk_watch_fire(bc_zk_t *zk, const char *path)
{
    zk_watch_t fired[32];
    size_t nfired;

    do {
        nfired = 0;
        pthread_mutex_lock(&zk->watch_mu);
        for (size_t i = 0; i < zk->nwatches && nfired < 32;) {
            if (strcmp(zk->watches[i].path, path) == 0) {
                fired[nfired++] = zk->watches[i];
                zk->watches[i] = zk->watches[--zk->nwatches];
            } else {
                i++;
            }
        }
        pthread_mutex_unlock(&zk->watch_mu);
        for (size_t i = 0; i < nfired; i++) {
            fired[i].fn(zk, path, fired[i].ctx);
            free(fired[i].path);
        }
    } while (nfired == 32);
}

/* ---- session ---- */

static void
zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    bc_zk_t *zk = ctx;
    (void)zh;
    if (type == ZOO_SESSION_EVENT) {
        pthread_mutex_lock(&zk->state_mu);
        zk->zk_state = state;
        zk->state_changed = true;
        pthread_cond_broadcast(&zk->state_cv);
        pthread_mutex_unlock(&zk->state_mu);
        return;
    }
    if (path != NULL && path[0] != '\0') zk_watch_fire(zk, path);
}

/* The C client logs to stderr at INFO by default; ours says what matters. */
static void
zk_set_client_log_level(void)
{
    zoo_set_debug_level(bc__log_level >= BC_LOG_DEBUG ? ZOO_LOG_LEVEL_INFO : ZOO_LOG_LEVEL_ERROR);
}

static void
zk_auth_done(int rc, const void *data)
{
    const bc_zk_t *zk = data;
    if (rc != ZOK) {
        log_error("zookeeper: %s refused our credentials (%s): %s", zk->hosts, zerror(rc),
                  zk->hint);
    }
}

static zhandle_t *
zk_init_handle(bc_zk_t *zk)
{
    zhandle_t *zh = zookeeper_init(zk->hosts, zk_watcher, zk->session_timeout_ms, NULL, zk, 0);
    if (zh == NULL) {
        log_error("zookeeper: cannot create a session for %s: %s", zk->hosts, strerror(errno));
        return NULL;
    }
    /* Sent as soon as the session connects, before any request of ours
     * (the client sends its queue in order), and again by the client on
     * every reconnection of this session. */
    if (zk->has_auth) {
        int rc = zoo_add_auth(zh, "digest", zk->auth.cred, (int)strlen(zk->auth.cred),
                              zk_auth_done, zk);
        if (rc != ZOK) log_error("zookeeper: cannot present credentials: %s", zerror(rc));
    }
    return zh;
}

static void
zk_notify(bc_zk_t *zk, bc_zk_event_t ev)
{
    if (zk->session_fn != NULL) zk->session_fn(zk, ev, zk->session_ctx);
}

static void *
zk_supervise(void *arg)
{
    bc_zk_t *zk = arg;

    pthread_mutex_lock(&zk->state_mu);
    while (!zk->stopping) {
        while (!zk->state_changed && !zk->stopping) pthread_cond_wait(&zk->state_cv, &zk->state_mu);
        if (zk->stopping) break;
        zk->state_changed = false;
        int state = zk->zk_state;
        pthread_mutex_unlock(&zk->state_mu);

        if (state == ZOO_CONNECTED_STATE) {
            bool fresh;
            pthread_mutex_lock(&zk->state_mu);
            fresh = zk->expired_pending;
            zk->expired_pending = false;
            zk->ever_connected = true;
            pthread_mutex_unlock(&zk->state_mu);
            log_info("zookeeper: %s to %s (session timeout %d ms)",
                     fresh ? "new session connected" : "connected", zk->hosts,
                     bc_zk_session_timeout(zk));
            zk_notify(zk, fresh ? BC_ZK_NEW_SESSION : BC_ZK_CONNECTED);
        } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
            log_warn("zookeeper: session expired; opening a new one");
            zk_watch_clear(zk);
            zk_notify(zk, BC_ZK_EXPIRED);
            pthread_rwlock_wrlock(&zk->lock);
            if (zk->zh != NULL) zookeeper_close(zk->zh);
            zk->zh = NULL;
            pthread_mutex_lock(&zk->state_mu);
            zk->expired_pending = true;
            zk->state_changed = false;
            pthread_mutex_unlock(&zk->state_mu);
            while ((zk->zh = zk_init_handle(zk)) == NULL) {
                pthread_mutex_lock(&zk->state_mu);
                bool stop = zk->stopping;
                pthread_mutex_unlock(&zk->state_mu);
                if (stop) break;
                struct timespec pause = {0, 200 * 1000 * 1000};
                nanosleep(&pause, NULL);
            }
            pthread_rwlock_unlock(&zk->lock);
        } else {
            log_warn("zookeeper: disconnected from %s; retrying", zk->hosts);
            zk_notify(zk, BC_ZK_DISCONNECTED);
        }
        pthread_mutex_lock(&zk->state_mu);
    }
    pthread_mutex_unlock(&zk->state_mu);
    return NULL;
}

bc_status_t
bc_zk_open(const char *hosts, int session_timeout_ms, int connect_timeout_ms,
           bc_zk_session_fn fn, void *ctx, bc_zk_t **out)
{
    bc_zk_auth_t auth;
    char hint[256];
    pthread_mutex_lock(&default_mu);
    bool has = default_has_auth;
    auth = default_auth;
    snprintf(hint, sizeof(hint), "%s", default_hint);
    pthread_mutex_unlock(&default_mu);
    bc_status_t st = bc_zk_open_auth(hosts, session_timeout_ms, connect_timeout_ms, fn, ctx,
                                     has ? &auth : NULL, hint, out);
    bc_zk_auth_clear(&auth);
    return st;
}

bc_status_t
bc_zk_open_auth(const char *hosts, int session_timeout_ms, int connect_timeout_ms,
                bc_zk_session_fn fn, void *ctx, const bc_zk_auth_t *auth, const char *hint,
                bc_zk_t **out)
{
    if (hosts == NULL || hosts[0] == '\0' || session_timeout_ms <= 0 || out == NULL) return BC_EINVAL;
    static pthread_once_t log_once = PTHREAD_ONCE_INIT;
    pthread_once(&log_once, zk_set_client_log_level);

    bc_zk_t *zk = calloc(1, sizeof(*zk));
    if (zk == NULL) return BC_ENOMEM;
    zk->hosts = strdup(hosts);
    if (zk->hosts == NULL) {
        free(zk);
        return BC_ENOMEM;
    }
    zk->session_timeout_ms = session_timeout_ms;
    zk->session_fn = fn;
    zk->session_ctx = ctx;
    zk->has_auth = auth != NULL;
    if (auth != NULL) zk->auth = *auth;
    if (hint == NULL) {
        pthread_mutex_lock(&default_mu);
        snprintf(zk->hint, sizeof(zk->hint), "%s", default_hint);
        pthread_mutex_unlock(&default_mu);
    } else {
        snprintf(zk->hint, sizeof(zk->hint), "%s", hint);
    }
    atomic_init(&zk->noauth_logged_ms, 0);
    pthread_rwlock_init(&zk->lock, NULL);
    pthread_mutex_init(&zk->state_mu, NULL);
    bc_time_cond_init(&zk->state_cv);
    pthread_mutex_init(&zk->watch_mu, NULL);

    zk->zh = zk_init_handle(zk);
    if (zk->zh == NULL) {
        bc_zk_close(zk);
        return BC_EZK;
    }

    /* Wait for the first connection before starting the supervisor, so the
     * CONNECTED transition is observed here and announced once. */
    struct timespec deadline;
    bc_time_deadline(&deadline, CLOCK_MONOTONIC, connect_timeout_ms);
    pthread_mutex_lock(&zk->state_mu);
    while (zk->zk_state != ZOO_CONNECTED_STATE) {
        if (pthread_cond_timedwait(&zk->state_cv, &zk->state_mu, &deadline) == ETIMEDOUT) break;
    }
    bool connected = zk->zk_state == ZOO_CONNECTED_STATE;
    zk->state_changed = false;
    zk->ever_connected = connected;
    pthread_mutex_unlock(&zk->state_mu);
    if (!connected) {
        log_error("zookeeper: no connection to %s within %d ms", hosts, connect_timeout_ms);
        bc_zk_close(zk);
        return BC_ETIMEOUT;
    }
    if (pthread_create(&zk->supervisor, NULL, zk_supervise, zk) != 0) {
        bc_zk_close(zk);
        return BC_ENOMEM;
    }
    zk->supervisor_started = true;
    log_debug("zookeeper: connected to %s", hosts);
    *out = zk;
    return BC_OK;
}

void
bc_zk_close(bc_zk_t *zk)
{
    if (zk == NULL) return;
    pthread_mutex_lock(&zk->state_mu);
    zk->stopping = true;
    pthread_cond_broadcast(&zk->state_cv);
    pthread_mutex_unlock(&zk->state_mu);
    if (zk->supervisor_started) pthread_join(zk->supervisor, NULL);
    pthread_rwlock_wrlock(&zk->lock);
    if (zk->zh != NULL) zookeeper_close(zk->zh);
    zk->zh = NULL;
    pthread_rwlock_unlock(&zk->lock);
    zk_watch_clear(zk);
    free(zk->watches);
    pthread_rwlock_destroy(&zk->lock);
    pthread_mutex_destroy(&zk->state_mu);
    pthread_cond_destroy(&zk->state_cv);
    pthread_mutex_destroy(&zk->watch_mu);
    bc_zk_auth_clear(&zk->auth);
    free(zk->hosts);
    free(zk);
}

int
bc_zk_session_timeout(bc_zk_t *zk)
{
    int t = 0;
    pthread_rwlock_rdlock(&zk->lock);
    if (zk->zh != NULL && zoo_state(zk->zh) == ZOO_CONNECTED_STATE) t = zoo_recv_timeout(zk->zh);
    pthread_rwlock_unlock(&zk->lock);
    return t;
}

int
bc_zk_connected(bc_zk_t *zk)
{
    int c = 0;
    pthread_rwlock_rdlock(&zk->lock);
    if (zk->zh != NULL) c = zoo_state(zk->zh) == ZOO_CONNECTED_STATE;
    pthread_rwlock_unlock(&zk->lock);
    return c;
}

/* ---- operations ---- */

/* Runs `expr` with the handle read-locked; `zh` names the handle inside. */
#define ZK_WITH_HANDLE(zk, rc, expr)                                           \
    do {                                                                       \
        pthread_rwlock_rdlock(&(zk)->lock);                                    \
        zhandle_t *zh = (zk)->zh;                                              \
        (rc) = zh == NULL ? ZINVALIDSTATE : (expr);                            \
        pthread_rwlock_unlock(&(zk)->lock);                                    \
    } while (0)

/* The first read's buffer: tables and records fit, so one round trip. */
#define ZK_GET_FIRST_CAP (64u * 1024u)

bc_status_t
bc_zk_get(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx, char **data,
          size_t *len, int32_t *version)
{
    struct Stat stat;
    int rc;
    uint32_t cap = ZK_GET_FIRST_CAP;

    *data = NULL;
    *len = 0;
    /* BEHAVIOR: one round trip when the data fits the first buffer; the
     * reply's stat says how large it really is, so a larger znode is read
     * again with a buffer of its size (and again if it grew meanwhile). */
    for (int attempt = 0; attempt < 5; attempt++) {
        char *buf = malloc((size_t)cap + 1);
        if (buf == NULL) return BC_ENOMEM;
        int n = (int)cap;
        if (watch != NULL) zk_watch_register(zk, path, watch, watch_ctx);
        ZK_WITH_HANDLE(zk, rc, watch != NULL ? zoo_wget(zh, path, zk_watcher, zk, buf, &n, &stat)
                                             : zoo_get(zh, path, 0, buf, &n, &stat));
        if (rc != ZOK) {
            free(buf);
            return zk_result(zk, path, rc);
        }
        if ((uint32_t)stat.dataLength > BC_ZK_MAX_DATA) {
            free(buf);
            return BC_ETOOLARGE;
        }
        if (n < 0) n = 0;          /* a znode created without data */
        if (stat.dataLength > n) { /* cut: read again with room for all of it */
            free(buf);
            cap = (uint32_t)stat.dataLength;
            continue;
        }
        if (version != NULL) *version = stat.version;
        if (n == 0) {
            free(buf);
            return BC_OK;
        }
        if ((uint32_t)n + 4096u < cap) { /* do not keep 64 KiB for a small record */
            char *shrunk = realloc(buf, (size_t)n + 1);
            if (shrunk != NULL) buf = shrunk;
        }
        buf[n] = '\0';
        *data = buf;
        *len = (size_t)n;
        return BC_OK;
    }
    return BC_EAGAIN;
}

bc_status_t
bc_zk_set(bc_zk_t *zk, const char *path, const char *data, size_t len, int32_t version,
          int32_t *new_version)
{
    struct Stat stat;
    int rc;
    if (len > BC_ZK_MAX_DATA) return BC_ETOOLARGE;
    ZK_WITH_HANDLE(zk, rc, zoo_set2(zh, path, data, (int)len, version, &stat));
    if (rc == ZOK && new_version != NULL) *new_version = stat.version;
    return zk_result(zk, path, rc);
}

static int
zk_mode(int flags)
{
    if ((flags & BC_ZK_EPHEMERAL) && (flags & BC_ZK_SEQUENTIAL)) return ZOO_EPHEMERAL_SEQUENTIAL;
    if (flags & BC_ZK_EPHEMERAL) return ZOO_EPHEMERAL;
    if (flags & BC_ZK_SEQUENTIAL) return ZOO_PERSISTENT_SEQUENTIAL;
    return ZOO_PERSISTENT;
}

/* path's parent ("/" for "/x") into buf. */
static void
zk_parent(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
    if (n >= len) n = len - 1;
    memcpy(buf, slash == NULL ? "/" : path, n);
    buf[n] = '\0';
}

/*
 * The ACL a new znode at path gets (ACCESS CONTROL): open without
 * credentials, else a copy of its parent's into *fetched (the caller
 * frees it with deallocate_ACL_vector when *owned).  Returns a ZooKeeper
 * code.
 */
static int
zk_inherited_acl(bc_zk_t *zk, zhandle_t *zh, const char *path, struct ACL_vector *fetched,
                 bool *owned, const struct ACL_vector **out)
{
    char parent[1100];
    struct Stat stat;
    *owned = false;
    *out = &ZOO_OPEN_ACL_UNSAFE;
    if (!zk->has_auth) return ZOK;
    zk_parent(path, parent, sizeof(parent));
    memset(fetched, 0, sizeof(*fetched));
    int rc = zoo_get_acl(zh, parent, fetched, &stat);
    if (rc == ZNONODE) return ZOK;   /* the create itself then says ZNONODE */
    if (rc != ZOK) return rc;
    *owned = true;
    *out = fetched;
    return ZOK;
}

static int
zk_create_locked(bc_zk_t *zk, zhandle_t *zh, const char *path, const char *data, size_t len,
                 int flags, const bc_zk_acl_t *acl, char *created, size_t created_len)
{
    struct ACL_vector fetched;
    bool owned = false;
    const struct ACL_vector *use = acl != NULL ? &acl->v : &ZOO_OPEN_ACL_UNSAFE;
    int rc = acl != NULL ? ZOK : zk_inherited_acl(zk, zh, path, &fetched, &owned, &use);
    if (rc == ZOK) {
        rc = zoo_create(zh, path, data, data ? (int)len : -1, use, zk_mode(flags), created,
                        (int)created_len);
    }
    if (owned) deallocate_ACL_vector(&fetched);
    return rc;
}

bc_status_t
bc_zk_create_acl(bc_zk_t *zk, const char *path, const char *data, size_t len, int flags,
                 const bc_zk_acl_t *acl, char *created, size_t created_len)
{
    int rc;
    if (len > BC_ZK_MAX_DATA) return BC_ETOOLARGE;
    ZK_WITH_HANDLE(zk, rc, zk_create_locked(zk, zh, path, data, len, flags, acl, created,
                                            created_len));
    return zk_result(zk, path, rc);
}

bc_status_t
bc_zk_create(bc_zk_t *zk, const char *path, const char *data, size_t len, int flags,
             char *created, size_t created_len)
{
    return bc_zk_create_acl(zk, path, data, len, flags, NULL, created, created_len);
}

bc_status_t
bc_zk_create_all(bc_zk_t *zk, const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || path[0] != '/' || n > 1024) return BC_EINVAL;
    char buf[1025];
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        bc_status_t st = bc_zk_create(zk, buf, NULL, 0, 0, NULL, 0);
        buf[i] = saved;
        if (st != BC_OK && st != BC_EEXISTS) return st;
    }
    return BC_OK;
}

bc_status_t
bc_zk_delete(bc_zk_t *zk, const char *path, int32_t version)
{
    int rc;
    ZK_WITH_HANDLE(zk, rc, zoo_delete(zh, path, version));
    return zk_result(zk, path, rc);
}

bc_status_t
bc_zk_exists(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx, int32_t *version)
{
    struct Stat stat;
    int rc;
    if (watch != NULL) zk_watch_register(zk, path, watch, watch_ctx);
    ZK_WITH_HANDLE(zk, rc, watch != NULL ? zoo_wexists(zh, path, zk_watcher, zk, &stat)
                                         : zoo_exists(zh, path, 0, &stat));
    if (rc == ZOK && version != NULL) *version = stat.version;
    return zk_result(zk, path, rc);
}

static int
zk_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bc_status_t
bc_zk_children(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx,
               bc_zk_strings_t *out)
{
    struct String_vector sv = {0, NULL};
    int rc;
    out->count = 0;
    out->names = NULL;
    if (watch != NULL) zk_watch_register(zk, path, watch, watch_ctx);
    ZK_WITH_HANDLE(zk, rc, watch != NULL ? zoo_wget_children(zh, path, zk_watcher, zk, &sv)
                                         : zoo_get_children(zh, path, 0, &sv));
    if (rc != ZOK) return zk_result(zk, path, rc);
    bc_status_t st = BC_OK;
    if (sv.count > 0) {
        out->names = calloc((size_t)sv.count, sizeof(char *));
        if (out->names == NULL) {
            st = BC_ENOMEM;
        } else {
            for (int i = 0; i < sv.count; i++) {
                out->names[i] = strdup(sv.data[i]);
                if (out->names[i] == NULL) st = BC_ENOMEM;
                out->count++;
            }
            qsort(out->names, (size_t)out->count, sizeof(char *), zk_name_cmp);
        }
    }
    deallocate_String_vector(&sv);
    if (st != BC_OK) bc_zk_strings_free(out);
    return st;
}

void
bc_zk_strings_free(bc_zk_strings_t *s)
{
    for (int i = 0; i < s->count; i++) free(s->names[i]);
    free(s->names);
    s->names = NULL;
    s->count = 0;
}

/* ---- transactions ---- */

struct bc_zk_txn {
    int nops;
    zoo_op_t ops[BC_ZK_TXN_MAX];
    char created[BC_ZK_TXN_MAX][256];
    struct Stat stats[BC_ZK_TXN_MAX];
    /* creates: an explicit ACL, or NULL for the inherited one (resolved
     * at the commit into fetched[]) */
    bool is_create[BC_ZK_TXN_MAX];
    const bc_zk_acl_t *acl[BC_ZK_TXN_MAX];
    struct ACL_vector fetched[BC_ZK_TXN_MAX];
    bool fetched_owned[BC_ZK_TXN_MAX];
};

bc_zk_txn_t *
bc_zk_txn_new(void)
{
    return calloc(1, sizeof(bc_zk_txn_t));
}

void
bc_zk_txn_free(bc_zk_txn_t *txn)
{
    free(txn);
}

bc_status_t
bc_zk_txn_create_acl(bc_zk_txn_t *txn, const char *path, const char *data, size_t len, int flags,
                     const bc_zk_acl_t *acl)
{
    if (txn->nops == BC_ZK_TXN_MAX || len > BC_ZK_MAX_DATA) return BC_EINVAL;
    int i = txn->nops++;
    zoo_create_op_init(&txn->ops[i], path, data, data ? (int)len : -1,
                       acl != NULL ? &acl->v : &ZOO_OPEN_ACL_UNSAFE, zk_mode(flags),
                       txn->created[i], sizeof(txn->created[i]));
    txn->is_create[i] = true;
    txn->acl[i] = acl;
    return BC_OK;
}

bc_status_t
bc_zk_txn_create(bc_zk_txn_t *txn, const char *path, const char *data, size_t len, int flags)
{
    return bc_zk_txn_create_acl(txn, path, data, len, flags, NULL);
}

/*
 * Gives each create without an explicit ACL its parent's (ACCESS
 * CONTROL): the ACL of an earlier create of the same transaction when
 * that is the parent, else the parent's as ZooKeeper has it.  Returns a
 * ZooKeeper code; *failed the op it failed for.
 */
static int
zk_txn_resolve_acls(bc_zk_t *zk, zhandle_t *zh, bc_zk_txn_t *txn, int *failed)
{
    if (!zk->has_auth) return ZOK;
    for (int i = 0; i < txn->nops; i++) {
        if (!txn->is_create[i] || txn->acl[i] != NULL) continue;
        char parent[1100];
        zk_parent(txn->ops[i].create_op.path, parent, sizeof(parent));
        const struct ACL_vector *use = NULL;
        for (int j = i - 1; j >= 0 && use == NULL; j--) {
            if (txn->is_create[j] && strcmp(txn->ops[j].create_op.path, parent) == 0) {
                use = txn->ops[j].create_op.acl;
            }
        }
        if (use == NULL) {
            int rc = zk_inherited_acl(zk, zh, txn->ops[i].create_op.path, &txn->fetched[i],
                                      &txn->fetched_owned[i], &use);
            if (rc != ZOK) {
                *failed = i;
                return rc;
            }
        }
        txn->ops[i].create_op.acl = use;
    }
    return ZOK;
}

static void
zk_txn_release_acls(bc_zk_txn_t *txn)
{
    for (int i = 0; i < txn->nops; i++) {
        if (txn->fetched_owned[i]) deallocate_ACL_vector(&txn->fetched[i]);
        txn->fetched_owned[i] = false;
    }
}

bc_status_t
bc_zk_txn_set(bc_zk_txn_t *txn, const char *path, const char *data, size_t len, int32_t version)
{
    if (txn->nops == BC_ZK_TXN_MAX || len > BC_ZK_MAX_DATA) return BC_EINVAL;
    int i = txn->nops++;
    zoo_set_op_init(&txn->ops[i], path, data, (int)len, version, &txn->stats[i]);
    return BC_OK;
}

bc_status_t
bc_zk_txn_check(bc_zk_txn_t *txn, const char *path, int32_t version)
{
    if (txn->nops == BC_ZK_TXN_MAX) return BC_EINVAL;
    zoo_check_op_init(&txn->ops[txn->nops++], path, version);
    return BC_OK;
}

bc_status_t
bc_zk_txn_delete(bc_zk_txn_t *txn, const char *path, int32_t version)
{
    if (txn->nops == BC_ZK_TXN_MAX) return BC_EINVAL;
    zoo_delete_op_init(&txn->ops[txn->nops++], path, version);
    return BC_OK;
}

bc_status_t
bc_zk_txn_commit(bc_zk_t *zk, bc_zk_txn_t *txn, int *failed_op)
{
    zoo_op_result_t results[BC_ZK_TXN_MAX];
    int rc;
    if (failed_op != NULL) *failed_op = -1;
    if (txn->nops == 0) return BC_OK;
    int acl_failed = -1;
    pthread_rwlock_rdlock(&zk->lock);
    zhandle_t *zh = zk->zh;
    rc = zh == NULL ? ZINVALIDSTATE : zk_txn_resolve_acls(zk, zh, txn, &acl_failed);
    if (rc == ZOK) rc = zoo_multi(zh, txn->nops, txn->ops, results);
    pthread_rwlock_unlock(&zk->lock);
    zk_txn_release_acls(txn);
    if (acl_failed >= 0) {
        if (failed_op != NULL) *failed_op = acl_failed;
        return zk_result(zk, txn->ops[acl_failed].create_op.path, rc);
    }
    if (rc == ZOK) return BC_OK;
    for (int i = 0; i < txn->nops; i++) {
        if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY) {
            if (failed_op != NULL) *failed_op = i;
            const char *path = txn->is_create[i] ? txn->ops[i].create_op.path
                                                 : txn->ops[i].set_op.path;
            return zk_result(zk, path != NULL ? path : "(transaction)", results[i].err);
        }
    }
    return bc_zk_status(rc);
}

/* ---- ACL administration ---- */

static bc_status_t
zk_set_acl_rec(bc_zk_t *zk, const char *path, const bc_zk_acl_t *acl, unsigned *count,
               int depth)
{
    int rc;
    if (depth > 64) return BC_EINVAL;
    ZK_WITH_HANDLE(zk, rc, zoo_set_acl(zh, path, -1, &acl->v));
    if (rc == ZNONODE) return BC_OK;   /* an ephemeral that went meanwhile */
    if (rc != ZOK) return zk_result(zk, path, rc);
    (*count)++;
    bc_zk_strings_t kids;
    bc_status_t st = bc_zk_children(zk, path, NULL, NULL, &kids);
    if (st == BC_ENOTFOUND) return BC_OK;
    if (st != BC_OK) return st;
    for (int i = 0; i < kids.count && st == BC_OK; i++) {
        size_t n = strlen(path) + strlen(kids.names[i]) + 2;
        char *child = malloc(n);
        if (child == NULL) {
            st = BC_ENOMEM;
            break;
        }
        snprintf(child, n, "%s/%s", strcmp(path, "/") == 0 ? "" : path, kids.names[i]);
        st = zk_set_acl_rec(zk, child, acl, count, depth + 1);
        free(child);
    }
    bc_zk_strings_free(&kids);
    return st;
}

bc_status_t
bc_zk_set_acl_tree(bc_zk_t *zk, const char *root, const bc_zk_acl_t *acl, unsigned *count)
{
    unsigned n = 0;
    if (root == NULL || root[0] != '/' || acl == NULL) return BC_EINVAL;
    bc_status_t st = zk_set_acl_rec(zk, root, acl, &n, 0);
    if (count != NULL) *count = n;
    return st;
}

bc_status_t
bc_zk_acl_text(bc_zk_t *zk, const char *path, char *buf, size_t len)
{
    struct ACL_vector v;
    struct Stat stat;
    int rc;
    if (len == 0) return BC_EINVAL;
    buf[0] = '\0';
    memset(&v, 0, sizeof(v));
    ZK_WITH_HANDLE(zk, rc, zoo_get_acl(zh, path, &v, &stat));
    if (rc != ZOK) return zk_result(zk, path, rc);
    size_t o = 0;
    for (int i = 0; i < v.count; i++) {
        const struct ACL *a = &v.data[i];
        char perms[8];
        int k = 0;
        if (a->perms & ZOO_PERM_CREATE) perms[k++] = 'c';
        if (a->perms & ZOO_PERM_DELETE) perms[k++] = 'd';
        if (a->perms & ZOO_PERM_READ) perms[k++] = 'r';
        if (a->perms & ZOO_PERM_WRITE) perms[k++] = 'w';
        if (a->perms & ZOO_PERM_ADMIN) perms[k++] = 'a';
        perms[k] = '\0';
        /* a digest id is "user:hash": show the user only */
        const char *id = a->id.id != NULL ? a->id.id : "";
        int idlen = (int)strlen(id);
        if (a->id.scheme != NULL && strcmp(a->id.scheme, "digest") == 0 && strchr(id, ':')) {
            idlen = (int)(strchr(id, ':') - id);
        }
        int n = snprintf(buf + o, len - o, "%s%s:%.*s:%s", i > 0 ? ", " : "",
                         a->id.scheme != NULL ? a->id.scheme : "?", idlen, id, perms);
        if (n < 0 || (size_t)n >= len - o) break;
        o += (size_t)n;
    }
    deallocate_ACL_vector(&v);
    return BC_OK;
}
