/*
 * bc_secret.h -- secrets read from files: the admin API token, ZooKeeper
 * digest credentials, and the cluster secret of peer links.  One file
 * format, one loader, one constant-time matcher for all of them
 * (docs/security.md, "Credential files").
 *
 * FILE FORMAT
 *   A small text file (at most BC_SECRET_MAX_FILE bytes):
 *
 *       # comments and blank lines are ignored
 *       9f0c1e...   <- the CURRENT value: what this process sends
 *       41aa7b...   <- further values: still ACCEPTED (rotation)
 *
 *   - one value per line; spaces, tabs and the line end (LF or CRLF)
 *     around it are trimmed; a value is printable ASCII without spaces;
 *   - the first value is the one a process presents (bearer token sent,
 *     ZooKeeper identity, the key a peer proves); every value is accepted
 *     when checking what others present.  To rotate: put the new value
 *     first and keep the old one below it, reload every process (SIGHUP),
 *     then remove the old line and reload again;
 *   - the file must be a regular file that "other" users cannot read or
 *     write (mode 0600 or 0640, as ssh and PostgreSQL demand of keys);
 *     anything else is refused with a message saying why.
 *
 *   Each kind of secret has its rules (bc_secret_rules_t): how long a
 *   value must be, how many values the file may hold, and whether a value
 *   is "user:password" (ZooKeeper's digest scheme).
 *
 * SYSTEMD CREDENTIALS
 *   A unit that loads a credential (LoadCredential=admin-token:/etc/...)
 *   passes its path as "%d/admin-token"; bc_secret_load also accepts
 *   "credential:NAME", read from $CREDENTIALS_DIRECTORY/NAME, for
 *   configuration files that cannot use the specifier.
 *
 * FOR PEER LINKS
 *   The cluster secret uses bc_secret_rules_cluster: at least 32
 *   characters (e.g. `openssl rand -hex 32`), the first value proves, every
 *   value verifies, so a rotation never splits the cluster.
 *
 * MEMORY
 *   Values are wiped (OPENSSL_cleanse) when the set is cleared; the
 *   file's bytes are wiped as soon as they are parsed.
 */
#ifndef BC_SECRET_H
#define BC_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_status.h"

#define BC_SECRET_MAX_VALUES 8
#define BC_SECRET_MAX_FILE   (16u * 1024u)
#define BC_SECRET_DIGEST_LEN 32            /* SHA-256 */

typedef struct bc_secret_rules {
    const char *what;          /* "admin token": used in messages */
    size_t min_len, max_len;   /* bytes per value */
    unsigned max_values;       /* 1..BC_SECRET_MAX_VALUES */
    bool user_password;        /* each value is "user:password" */
    bool token68;              /* each value fits an HTTP Bearer credential */
} bc_secret_rules_t;

/* Admin API bearer tokens: 16..256 token68 characters, up to 8 values. */
extern const bc_secret_rules_t bc_secret_rules_token;
/* ZooKeeper digest identities: "user:password", one value. */
extern const bc_secret_rules_t bc_secret_rules_zk;
/* The cluster secret of peer links: 32..256 characters, up to 4 values. */
extern const bc_secret_rules_t bc_secret_rules_cluster;
/* memcached's ASCII authentication file (-Y): "user:password" lines, at
 * most 8 of them and 255 bytes each, as memcached 1.6 reads them. */
extern const bc_secret_rules_t bc_secret_rules_mcauth;

typedef struct bc_secret {
    unsigned count;                                   /* >= 1 once loaded */
    char *value[BC_SECRET_MAX_VALUES];                /* NUL-terminated, owned */
    size_t len[BC_SECRET_MAX_VALUES];
    unsigned char digest[BC_SECRET_MAX_VALUES][BC_SECRET_DIGEST_LEN]; /* SHA-256 of each */
} bc_secret_t;

/*
 * Reads the secret file at path ("credential:NAME" reads
 * $CREDENTIALS_DIRECTORY/NAME) under rules.  *out is zeroed first and
 * owned by the caller on BC_OK (bc_secret_clear).  err names the file and
 * what is wrong, never a value.
 * Errors: BC_EIO (cannot open or read), BC_EINVAL (not a regular file,
 * readable by others, malformed, no value, too many values),
 * BC_ETOOLARGE (file too large), BC_ENOMEM.
 */
bc_status_t bc_secret_load(const char *path, const bc_secret_rules_t *rules, bc_secret_t *out,
                           char *err, size_t errlen);

/* As bc_secret_load, from memory (text[0..len)); name is what messages
 * call it ("BUCKETCACHE_TOKEN").  Errors as above, without BC_EIO. */
bc_status_t bc_secret_parse(const char *name, const char *text, size_t len,
                            const bc_secret_rules_t *rules, bc_secret_t *out, char *err,
                            size_t errlen);

/* Wipes and frees the values; s is empty afterwards.  NULL is accepted. */
void bc_secret_clear(bc_secret_t *s);

/*
 * Whether candidate[0..len) equals one of s's values, in time that
 * depends on neither the values nor the candidate's content or length:
 * SHA-256 of the candidate is compared with each value's digest by
 * CRYPTO_memcmp, and every value is compared, match or not.
 */
bool bc_secret_match(const bc_secret_t *s, const void *candidate, size_t len);

/* For "user:password" values: the user part of value i (copied into buf,
 * NUL-terminated; "" when buf is too small). */
void bc_secret_user(const bc_secret_t *s, unsigned i, char *buf, size_t buflen);

#endif
