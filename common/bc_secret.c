/*
 * bc_secret.c -- see bc_secret.h.
 *
 * The loader fstat()s the opened descriptor (not the path, so the checks
 * and the read see the same file), refuses what is not a small regular
 * file kept from "other" users, reads it whole, parses it line by line and
 * wipes the buffer.  Messages name the file and the line, never a value.
 */
#include "bc_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

const bc_secret_rules_t bc_secret_rules_token = {
    .what = "admin token", .min_len = 16, .max_len = 256, .max_values = 8, .token68 = true};
const bc_secret_rules_t bc_secret_rules_zk = {
    .what = "ZooKeeper credentials", .min_len = 3, .max_len = 512, .max_values = 1,
    .user_password = true};
const bc_secret_rules_t bc_secret_rules_cluster = {
    .what = "cluster secret", .min_len = 32, .max_len = 256, .max_values = 4};
const bc_secret_rules_t bc_secret_rules_mcauth = {
    .what = "memcached auth file entry", .min_len = 3, .max_len = 255, .max_values = 8,
    .user_password = true};

#define CREDENTIAL_PREFIX "credential:"

/* RFC 7235 token68 (what a Bearer credential may hold), minus '=' which
 * may only end it. */
static bool
is_token68(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

void
bc_secret_clear(bc_secret_t *s)
{
    if (s == NULL) return;
    for (unsigned i = 0; i < s->count && i < BC_SECRET_MAX_VALUES; i++) {
        if (s->value[i] != NULL) {
            OPENSSL_cleanse(s->value[i], s->len[i]);
            free(s->value[i]);
        }
    }
    OPENSSL_cleanse(s, sizeof(*s));
    memset(s, 0, sizeof(*s));
}

/* Why value v (a whole trimmed line) is unacceptable, or NULL. */
static const char *
value_problem(const bc_secret_rules_t *rules, const char *v, size_t n)
{
    if (n < rules->min_len) return "too short";
    if (n > rules->max_len) return "too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x21 || c > 0x7e) return "holds a space or a non-printable character";
    }
    if (rules->token68) {
        size_t i = 0;
        while (i < n && is_token68((unsigned char)v[i])) i++;
        while (i < n && v[i] == '=') i++;
        if (i != n) return "holds a character a bearer token cannot (A-Z a-z 0-9 - . _ ~ + / and a trailing =)";
    }
    if (rules->user_password) {
        const char *colon = memchr(v, ':', n);
        if (colon == NULL) return "is not user:password";
        if (colon == v) return "has an empty user";
        if (colon == v + n - 1) return "has an empty password";
    }
    return NULL;
}

bc_status_t
bc_secret_parse(const char *name, const char *text, size_t len, const bc_secret_rules_t *rules,
                bc_secret_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (name == NULL) name = "secret";
    if (rules == NULL || rules->max_values == 0 || rules->max_values > BC_SECRET_MAX_VALUES) {
        return bc_fail(err, errlen, BC_EINVAL, "%s: no rules", name);
    }
    if (len > BC_SECRET_MAX_FILE) {
        return bc_fail(err, errlen, BC_ETOOLARGE, "%s: larger than %u bytes: not a %s file", name,
                       BC_SECRET_MAX_FILE, rules->what);
    }
    size_t pos = 0;
    unsigned line = 0;
    bc_status_t st = BC_OK;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line++;
        size_t a = pos, b = end;
        pos = end < len ? end + 1 : end;
        while (a < b && (text[a] == ' ' || text[a] == '\t')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        if (a == b || text[a] == '#') continue;
        const char *why = value_problem(rules, text + a, b - a);
        if (why != NULL) {
            st = bc_fail(err, errlen, BC_EINVAL, "%s: line %u: the %s %s", name, line, rules->what,
                         why);
            break;
        }
        if (out->count == rules->max_values) {
            st = bc_fail(err, errlen, BC_EINVAL, "%s: more than %u %s%s", name,
                         rules->max_values, rules->max_values == 1 ? "line holding a " : "values of the ",
                         rules->what);
            break;
        }
        char *v = malloc(b - a + 1);
        if (v == NULL) {
            st = BC_ENOMEM;
            break;
        }
        memcpy(v, text + a, b - a);
        v[b - a] = '\0';
        out->value[out->count] = v;
        out->len[out->count] = b - a;
        SHA256((const unsigned char *)v, b - a, out->digest[out->count]);
        out->count++;
    }
    if (st == BC_OK && out->count == 0) {
        st = bc_fail(err, errlen, BC_EINVAL, "%s: holds no %s (only blank or # lines)", name,
                     rules->what);
    }
    if (st != BC_OK) bc_secret_clear(out);
    return st;
}

bc_status_t
bc_secret_load(const char *path, const bc_secret_rules_t *rules, bc_secret_t *out, char *err,
               size_t errlen)
{
    char resolved[4096];
    memset(out, 0, sizeof(*out));
    if (path == NULL || path[0] == '\0') {
        return bc_fail(err, errlen, BC_EINVAL, "no %s file named", rules->what);
    }
    if (strncmp(path, CREDENTIAL_PREFIX, strlen(CREDENTIAL_PREFIX)) == 0) {
        const char *name = path + strlen(CREDENTIAL_PREFIX);
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        if (name[0] == '\0' || strchr(name, '/') != NULL) {
            return bc_fail(err, errlen, BC_EINVAL, "%s: expected credential:NAME", path);
        }
        if (dir == NULL || dir[0] == '\0') {
            return bc_fail(err, errlen, BC_EINVAL,
                           "%s: $CREDENTIALS_DIRECTORY is not set (run under systemd with "
                           "LoadCredential=%s:...)", path, name);
        }
        int n = snprintf(resolved, sizeof(resolved), "%s/%s", dir, name);
        if (n < 0 || (size_t)n >= sizeof(resolved)) {
            return bc_fail(err, errlen, BC_EINVAL, "%s: path too long", path);
        }
        path = resolved;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        return bc_fail(err, errlen, BC_EIO, "cannot open %s file %s: %s", rules->what, path,
                       strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bc_fail(err, errlen, BC_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bc_fail(err, errlen, BC_EINVAL, "%s: not a regular file", path);
    }
    if (sb.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return bc_fail(err, errlen, BC_EINVAL,
                       "%s: other users can %s it (mode %03o); a %s file must not be: "
                       "chmod o-rwx %s", path, (sb.st_mode & S_IROTH) ? "read" : "write",
                       (unsigned)(sb.st_mode & 0777), rules->what, path);
    }
    if ((uintmax_t)sb.st_size > BC_SECRET_MAX_FILE) {
        close(fd);
        return bc_fail(err, errlen, BC_ETOOLARGE, "%s: larger than %u bytes: not a %s file", path,
                       BC_SECRET_MAX_FILE, rules->what);
    }
    char buf[BC_SECRET_MAX_FILE + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, len);
            return bc_fail(err, errlen, BC_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len == sizeof(buf)) break;   /* grew since fstat: parse refuses it */
    }
    close(fd);
    bc_status_t st = bc_secret_parse(path, buf, len, rules, out, err, errlen);
    OPENSSL_cleanse(buf, len);
    return st;
}

bool
bc_secret_match(const bc_secret_t *s, const void *candidate, size_t len)
{
    unsigned char d[BC_SECRET_DIGEST_LEN];
    int matched = 0;
    if (s == NULL || s->count == 0 || candidate == NULL) return false;
    SHA256(candidate, len, d);
    /* No early exit: the time says nothing about which value matched. */
    for (unsigned i = 0; i < s->count; i++) {
        matched |= CRYPTO_memcmp(d, s->digest[i], sizeof(d)) == 0;
    }
    OPENSSL_cleanse(d, sizeof(d));
    return matched != 0;
}

void
bc_secret_user(const bc_secret_t *s, unsigned i, char *buf, size_t buflen)
{
    if (buflen == 0) return;
    buf[0] = '\0';
    if (s == NULL || i >= s->count) return;
    const char *colon = strchr(s->value[i], ':');
    size_t n = colon != NULL ? (size_t)(colon - s->value[i]) : s->len[i];
    if (n >= buflen) return;
    memcpy(buf, s->value[i], n);
    buf[n] = '\0';
}
