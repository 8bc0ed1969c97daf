/*
 * bc_zk.h -- a ZooKeeper session that survives expiry, and synchronous
 * helpers that speak bc_status_t.
 *
 * BACKGROUND
 *   An expired ZooKeeper session cannot be revived: its handle must be
 *   closed and a new one created, and everything tied to the old session
 *   (ephemeral nodes, watches) is gone.  zookeeper_close() must not be called
 *   from the library's own completion thread, so bc_zk runs a small
 *   supervisor thread: the session watcher only records what happened and
 *   signals it; the supervisor closes the dead handle, opens a new one and
 *   then tells the owner through the session callback with
 *   BC_ZK_NEW_SESSION, which is where the owner re-creates its ephemeral
 *   nodes and re-arms its watches.
 *
 *        ZK completion thread            supervisor thread
 *        --------------------            -----------------
 *        session watcher:                wait for a signal
 *          CONNECTED  -> flag, signal    CONNECTED (first or again) ->
 *          CONNECTING -> flag, signal        callback(CONNECTED)
 *          EXPIRED    -> flag, signal    EXPIRED -> close handle, init new,
 *                                            callback(EXPIRED) ... then on
 *                                            connect callback(NEW_SESSION)
 *
 *   Callbacks run on the supervisor thread, never under a bc_zk lock, so
 *   they may call any bc_zk function.
 *
 * LOCKING
 *   zk->lock (a rwlock) guards the handle pointer: operations hold it for
 *   reading across their call, the supervisor takes it for writing to swap
 *   handles.
 *
 * ERRORS
 *   Every operation maps ZooKeeper's codes: ZNONODE -> BC_ENOTFOUND,
 *   ZNODEEXISTS -> BC_EEXISTS, ZBADVERSION -> BC_ESTALE, ZNOTEMPTY ->
 *   BC_EBUSY, connection loss / timeouts / no session -> BC_EAGAIN (retry
 *   later), bad arguments -> BC_EINVAL, ZNOAUTH / ZAUTHFAILED ->
 *   BC_EACCES, anything else -> BC_EZK.  A refusal is also logged, at most
 *   every few seconds per session, as
 *     ZooKeeper refused access to /bucketcache/main/config (NOAUTH): <hint>
 *   where the hint (bc_zk_set_default_auth) names the credentials to check.
 *
 * ACCESS CONTROL (docs/security.md)
 *   ZooKeeper's digest scheme: a session proves an identity with
 *   zoo_add_auth("digest", "user:password"); a znode's ACL lists identities
 *   as "digest:user:base64(sha1(user:password))" with permissions.
 *   A session opened with credentials (bc_zk_open_auth, or the process's
 *   default, bc_zk_set_default_auth) adds them on every new session, and
 *   every znode it creates gets its PARENT's ACL -- read just before the
 *   create -- so ephemeral and sequential znodes made long after
 *   `bucketcache cluster create` carry the cluster's ACL.  A session
 *   without credentials creates open znodes, as before ACLs existed.
 *   An explicit ACL (bc_zk_acl_build: a writer with every permission and
 *   an optional read-only identity) is what `cluster create` and `cluster
 *   secure` (bc_zk_set_acl_tree) put on a cluster's tree.
 */
#ifndef BC_ZK_H
#define BC_ZK_H

#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

typedef struct bc_zk bc_zk_t;

typedef enum bc_zk_event {
    BC_ZK_CONNECTED,      /* (re)connected within the same session */
    BC_ZK_DISCONNECTED,   /* connection lost; the session may still live */
    BC_ZK_EXPIRED,        /* the session is gone; a new one is being made */
    BC_ZK_NEW_SESSION,    /* a fresh session is up: recreate ephemerals, watches */
} bc_zk_event_t;

typedef void (*bc_zk_session_fn)(bc_zk_t *zk, bc_zk_event_t event, void *ctx);

/*
 * Called once when a watched znode changes (watches are one-shot); path is
 * only valid during the call.  Runs on ZooKeeper's completion thread, so it
 * must NOT call the synchronous bc_zk functions (they would wait for that
 * very thread: deadlock): set a flag and wake a thread of your own.  A watch set on an expired session never fires;
 * re-arm on BC_ZK_NEW_SESSION.
 */
typedef void (*bc_zk_watch_fn)(bc_zk_t *zk, const char *path, void *ctx);

#define BC_ZK_EPHEMERAL  0x1
#define BC_ZK_SEQUENTIAL 0x2

/* The largest znode payload read (ZooKeeper's own default jute.maxbuffer). */
#define BC_ZK_MAX_DATA (1024u * 1024u)

/* ---- credentials and ACLs ---- */

/* A digest identity: "user:password" (bc_secret.h's file format). */
typedef struct bc_zk_auth {
    char cred[520];                /* "user:password", NUL-terminated */
} bc_zk_auth_t;

/*
 * Reads a ZooKeeper credentials file ("user:password" on one line,
 * bc_secret_rules_zk; "credential:NAME" for a systemd credential).
 * Errors (err names the file and the problem): BC_EIO, BC_EINVAL,
 * BC_ETOOLARGE.
 */
bc_status_t bc_zk_auth_load(const char *path, bc_zk_auth_t *out, char *err, size_t errlen);
/* The same from a string ("user:password"); name is what messages call it. */
bc_status_t bc_zk_auth_parse(const char *name, const char *text, bc_zk_auth_t *out, char *err,
                             size_t errlen);
/* Wipes. */
void bc_zk_auth_clear(bc_zk_auth_t *auth);
/* The identity's user part into buf. */
void bc_zk_auth_user(const bc_zk_auth_t *auth, char *buf, size_t len);
/*
 * The digest ACL id: "user:BASE64(SHA1(user:password))", what ZooKeeper's
 * DigestAuthenticationProvider derives.  Errors: BC_ETOOLARGE (buf too small).
 */
bc_status_t bc_zk_digest_id(const bc_zk_auth_t *auth, char *buf, size_t len);

/*
 * The credentials every bc_zk_open of this process presents (copied;
 * NULL: none), and the hint refusals are logged with ("check
 * --zk-auth-file"; copied; NULL: a generic one).  Call before opening
 * sessions.
 */
void bc_zk_set_default_auth(const bc_zk_auth_t *auth, const char *hint);
/*
 * What the node, the console and the CLI do with --zk-auth-file: the
 * credentials of path (NULL or "": none) become the default, with the
 * hints every program gives (check the file; or: the cluster may want
 * one).  Errors: as bc_zk_auth_load (err says why); nothing is set then.
 */
bc_status_t bc_zk_use_auth_file(const char *path, char *err, size_t errlen);

/* An ACL to give znodes: owned by the caller (bc_zk_acl_free). */
typedef struct bc_zk_acl bc_zk_acl_t;
/*
 * writers[0..nwriters): every permission; readers[0..nreaders): read
 * only; nobody else anything.  At least one writer, at most
 * BC_ZK_ACL_MAX identities in all (two writers during a rotation).
 * Errors: BC_EINVAL, BC_ENOMEM, BC_ETOOLARGE.
 */
#define BC_ZK_ACL_MAX 4
bc_status_t bc_zk_acl_build(const bc_zk_auth_t *const *writers, size_t nwriters,
                            const bc_zk_auth_t *const *readers, size_t nreaders,
                            bc_zk_acl_t **out);
void bc_zk_acl_free(bc_zk_acl_t *acl);

/*
 * Sets acl on root and every znode below it (depth first, each before
 * its children are listed, so a znode created meanwhile under a secured
 * parent is covered by the create rule above).  *count (may be NULL)
 * receives how many znodes were set.  Needs the ADMIN permission on
 * each.  Errors: as the operations; BC_EACCES names the znode in the log.
 */
bc_status_t bc_zk_set_acl_tree(bc_zk_t *zk, const char *root, const bc_zk_acl_t *acl,
                               unsigned *count);

/*
 * A readable rendering of path's ACL into buf: "digest:writer:cdrwa,
 * digest:reader:r" or "world:anyone:cdrwa".  Errors: the operations'.
 */
bc_status_t bc_zk_acl_text(bc_zk_t *zk, const char *path, char *buf, size_t len);

/*
 * Opens a session to hosts ("h1:p1,h2:p2", copied) and waits up to
 * connect_timeout_ms for it to connect.  fn (may be NULL) and ctx are kept.
 * *out is owned by the caller and freed by bc_zk_close().
 * Errors: BC_EINVAL, BC_ETIMEOUT (no connection in time; nothing is left
 * open), BC_ENOMEM, BC_EZK.
 */
bc_status_t bc_zk_open(const char *hosts, int session_timeout_ms, int connect_timeout_ms,
                       bc_zk_session_fn fn, void *ctx, bc_zk_t **out);
/*
 * bc_zk_open with these credentials (copied; NULL: none, whatever the
 * process default) and refusal hint (NULL: the default's).
 */
bc_status_t bc_zk_open_auth(const char *hosts, int session_timeout_ms, int connect_timeout_ms,
                            bc_zk_session_fn fn, void *ctx, const bc_zk_auth_t *auth,
                            const char *hint, bc_zk_t **out);
/* Closes the session (its ephemeral nodes go at once) and frees zk. */
void bc_zk_close(bc_zk_t *zk);

/* The negotiated session timeout in ms (0 when not connected). */
int bc_zk_session_timeout(bc_zk_t *zk);
/* 1 when the current handle is connected. */
int bc_zk_connected(bc_zk_t *zk);

/*
 * Reads a znode in one round trip (two for one over 64 KiB: the first
 * reply tells its size).  *data is a malloc'd, NUL-terminated copy the
 * caller frees (NULL for an empty znode, with *len 0); version may be NULL.
 * With watch non-NULL, a one-shot data watch is set (only if the znode
 * exists: use bc_zk_exists to watch for its creation).  Errors as above,
 * plus BC_ETOOLARGE when the znode holds more than BC_ZK_MAX_DATA.
 */
bc_status_t bc_zk_get(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx,
                      char **data, size_t *len, int32_t *version);

/* Sets a znode's data if its version is still `version` (-1: any).
 * new_version may be NULL.  Errors: BC_ESTALE (someone else wrote first). */
bc_status_t bc_zk_set(bc_zk_t *zk, const char *path, const char *data, size_t len,
                      int32_t version, int32_t *new_version);

/* Creates a znode; flags BC_ZK_EPHEMERAL / BC_ZK_SEQUENTIAL.  created
 * (may be NULL) receives the actual path (with a sequence suffix).
 * Errors: BC_EEXISTS, BC_ENOTFOUND (parent missing). */
bc_status_t bc_zk_create(bc_zk_t *zk, const char *path, const char *data, size_t len,
                         int flags, char *created, size_t created_len);

/* bc_zk_create with an explicit ACL (NULL: as bc_zk_create). */
bc_status_t bc_zk_create_acl(bc_zk_t *zk, const char *path, const char *data, size_t len,
                             int flags, const bc_zk_acl_t *acl, char *created,
                             size_t created_len);

/* Creates every missing persistent ancestor of path and path itself (empty
 * data); existing ones are fine. */
bc_status_t bc_zk_create_all(bc_zk_t *zk, const char *path);

/* Deletes a znode at `version` (-1: any).  Errors: BC_ENOTFOUND, BC_ESTALE,
 * BC_EBUSY (has children). */
bc_status_t bc_zk_delete(bc_zk_t *zk, const char *path, int32_t version);

/* exists: BC_OK or BC_ENOTFOUND; with watch, a one-shot watch is set either
 * way (ZooKeeper's exists watch fires on creation too). */
bc_status_t bc_zk_exists(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx,
                         int32_t *version);

/* A list of child names, owned by the caller: bc_zk_strings_free(). */
typedef struct bc_zk_strings {
    int count;
    char **names;
} bc_zk_strings_t;

/* Lists children, sorted by name (byte order); optional one-shot child watch. */
bc_status_t bc_zk_children(bc_zk_t *zk, const char *path, bc_zk_watch_fn watch, void *watch_ctx,
                           bc_zk_strings_t *out);
void bc_zk_strings_free(bc_zk_strings_t *s);

/*
 * A transaction: all of its ops apply or none.  Build with bc_zk_txn_*;
 * the strings passed in must stay valid until bc_zk_txn_commit returns.
 */
#define BC_ZK_TXN_MAX 64
typedef struct bc_zk_txn bc_zk_txn_t;
bc_zk_txn_t *bc_zk_txn_new(void);
void bc_zk_txn_free(bc_zk_txn_t *txn);
bc_status_t bc_zk_txn_create(bc_zk_txn_t *txn, const char *path, const char *data, size_t len,
                             int flags);
/* With an explicit ACL (borrowed until the commit returns). */
bc_status_t bc_zk_txn_create_acl(bc_zk_txn_t *txn, const char *path, const char *data,
                                 size_t len, int flags, const bc_zk_acl_t *acl);
bc_status_t bc_zk_txn_set(bc_zk_txn_t *txn, const char *path, const char *data, size_t len,
                          int32_t version);
bc_status_t bc_zk_txn_check(bc_zk_txn_t *txn, const char *path, int32_t version);
bc_status_t bc_zk_txn_delete(bc_zk_txn_t *txn, const char *path, int32_t version);
/* Commits.  On failure, *failed_op (may be NULL) is the index of the op that
 * failed, and the status is that op's error. */
bc_status_t bc_zk_txn_commit(bc_zk_t *zk, bc_zk_txn_t *txn, int *failed_op);

/* Maps a ZooKeeper return code to a bc_status_t (see ERRORS above). */
bc_status_t bc_zk_status(int zrc);

#endif
