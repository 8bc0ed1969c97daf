/*
 * bc_mcproto.c -- memcached text protocol parsing; see bc_mcproto.h.
 *
 * HOW A REQUEST LINE IS PARSED
 *
 *   "gats 300 alpha beta\r"          "cas k 5 0 3 77 noreply"
 *    |    |   '-----------'           |   '-------------------'
 *    |    |     keys range            |     words[1..6] (at most
 *    |    exptime word                |     MAX_WORDS are recorded,
 *    command word                     |     all are counted)
 *                                     command word
 *
 *   1. strip one trailing '\r';
 *   2. cut the command word and look it up (length first, then memcmp);
 *   3. get/gets/gat/gats: the rest of the line is the key range; every key
 *      is checked and counted once here so that the executor can walk the
 *      range without re-validating and reply without undoing output;
 *   4. everything else: split the words, check their count against the
 *      command's grammar (wrong count = "ERROR", as memcached's
 *      WANT_TOKENS), then convert each argument in memcached's order, so
 *      that a line with two bad fields gets the same error text.
 *
 * Numbers follow glibc strtoull/strtoll as memcached's safe_strto* helpers
 * use them: optional leading white space (a word cannot contain ' ', but it
 * can contain '\t'), optional sign, at least one digit, then either the end
 * of the word or a white-space byte after which the rest is ignored.
 */
#include "bc_mcproto.h"

#include <string.h>

#define MAX_WORDS 8

typedef struct word {
    const char *p;
    uint32_t n;
} word_t;

static bool
is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool
word_is(const word_t *w, const char *lit, size_t n)
{
    return w->n == n && memcmp(w->p, lit, n) == 0;
}

/*
 * Reads the magnitude and sign of a strtol-style number in [s, s+n).
 * Returns false when there is no digit, the magnitude overflows 64 bits,
 * or a non-space byte follows the digits.
 */
static bool
parse_magnitude(const char *s, size_t n, bool *negative, uint64_t *magnitude)
{
    size_t i = 0;
    uint64_t v = 0;
    size_t digits = 0;

    while (i < n && is_space((unsigned char)s[i])) i++;
    *negative = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        *negative = s[i] == '-';
        i++;
    }
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;     /* ERANGE */
        v = v * 10 + d;
        i++;
        digits++;
    }
    if (digits == 0) return false;
    if (i < n && !is_space((unsigned char)s[i])) return false;
    *magnitude = v;
    return true;
}

/* memcached's safe_strtoull: "-N" is accepted only when it wraps to a value
 * that is still non-negative as a signed number ("-0"). */
static bool
parse_u64(const word_t *w, uint64_t *out)
{
    bool neg;
    uint64_t mag;

    if (!parse_magnitude(w->p, w->n, &neg, &mag)) return false;
    if (neg) {
        mag = (uint64_t)0 - mag;
        if ((int64_t)mag < 0) return false;
    }
    *out = mag;
    return true;
}

/* memcached's safe_strtoul: strtoul (64 bits here) stored into a uint32_t,
 * so 4294967296 reads as 0 -- memcached's truncation, kept on purpose. */
static bool
parse_u32(const word_t *w, uint32_t *out)
{
    uint64_t v;

    if (!parse_u64(w, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

/* strtoll: signed 64-bit, overflow is an error. */
static bool
parse_i64(const word_t *w, int64_t *out)
{
    bool neg;
    uint64_t mag;

    if (!parse_magnitude(w->p, w->n, &neg, &mag)) return false;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)mag;
    }
    return true;
}

/* memcached's safe_strtol: strtol (64 bits here) stored into an int32_t. */
static bool
parse_i32(const word_t *w, int64_t *out)
{
    int64_t v;

    if (!parse_i64(w, &v)) return false;
    *out = (int32_t)(uint32_t)(uint64_t)v;
    return true;
}

/*
 * Splits [s, end) into space-separated words.  Records the first `max`,
 * returns how many there are in total.
 */
static size_t
split_words(const char *s, const char *end, word_t *words, size_t max)
{
    size_t count = 0;

    while (s < end) {
        while (s < end && *s == ' ') s++;
        if (s == end) break;
        const char *start = s;
        while (s < end && *s != ' ') s++;
        if (count < max) {
            words[count].p = start;
            words[count].n = (uint32_t)(s - start);
        }
        count++;
    }
    return count;
}

bool
bc_mc_key_valid(const char *key, size_t nkey)
{
    (void)key;
    return nkey >= 1 && nkey <= BC_MC_KEY_MAX_LEN;
}

bool
bc_mc_next_key(const char **cursor, const char *end, const char **key, size_t *nkey)
{
    const char *s = *cursor;

    while (s < end && *s == ' ') s++;
    if (s == end) {
        *cursor = s;
        return false;
    }
    const char *start = s;
    const char *space = memchr(s, ' ', (size_t)(end - s));
    s = space ? space : end;
    *key = start;
    *nkey = (size_t)(s - start);
    *cursor = s;
    return true;
}

bool
bc_mc_line_may_be_long(const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len && buf[i] == ' ') i++;
    if (i > 100) return false;
    buf += i;
    len -= i;
    return (len >= 4 && memcmp(buf, "get ", 4) == 0) ||
           (len >= 5 && memcmp(buf, "gets ", 5) == 0);
}

static const char *const cmd_names[] = {
    [BC_MC_CMD_NONE] = "",
    [BC_MC_CMD_GET] = "get",
    [BC_MC_CMD_GETS] = "gets",
    [BC_MC_CMD_GAT] = "gat",
    [BC_MC_CMD_GATS] = "gats",
    [BC_MC_CMD_SET] = "set",
    [BC_MC_CMD_ADD] = "add",
    [BC_MC_CMD_REPLACE] = "replace",
    [BC_MC_CMD_APPEND] = "append",
    [BC_MC_CMD_PREPEND] = "prepend",
    [BC_MC_CMD_CAS] = "cas",
    [BC_MC_CMD_DELETE] = "delete",
    [BC_MC_CMD_INCR] = "incr",
    [BC_MC_CMD_DECR] = "decr",
    [BC_MC_CMD_TOUCH] = "touch",
    [BC_MC_CMD_FLUSH_ALL] = "flush_all",
    [BC_MC_CMD_STATS] = "stats",
    [BC_MC_CMD_VERSION] = "version",
    [BC_MC_CMD_VERBOSITY] = "verbosity",
    [BC_MC_CMD_QUIT] = "quit",
    [BC_MC_CMD_MG] = "mg",
    [BC_MC_CMD_MS] = "ms",
    [BC_MC_CMD_MD] = "md",
    [BC_MC_CMD_MA] = "ma",
    [BC_MC_CMD_MN] = "mn",
    [BC_MC_CMD_ME] = "me",
    [BC_MC_CMD_SHUTDOWN] = "shutdown",
    [BC_MC_CMD_CACHE_MEMLIMIT] = "cache_memlimit",
    [BC_MC_CMD_SLABS] = "slabs",
    [BC_MC_CMD_LRU] = "lru",
    [BC_MC_CMD_LRU_CRAWLER] = "lru_crawler",
    [BC_MC_CMD_WATCH] = "watch",
    [BC_MC_CMD_REFRESH_CERTS] = "refresh_certs",
};

const char *
bc_mc_cmd_name(bc_mc_cmd_t cmd)
{
    if ((size_t)cmd >= sizeof(cmd_names) / sizeof(cmd_names[0])) return "";
    return cmd_names[cmd];
}

static bc_status_t
fail(bc_mc_request_t *req, const char *error)
{
    req->cmd = BC_MC_CMD_NONE;
    req->error = error;
    return BC_EPROTO;
}

/*
 * memcached's tokenize_command on [s, end): splits on spaces into at most
 * BC_MC_MAX_TOKENS - 1 tokens, then adds the terminal token (length 0;
 * when words remain, tok_rest is set and it points at them); ntok counts
 * the terminal token too.
 */
static void
tokenize(const char *s, const char *end, bc_mc_request_t *req)
{
    uint32_t n = 0;

    while (s < end) {
        while (s < end && *s == ' ') s++;
        if (s == end) break;
        if (n == BC_MC_MAX_TOKENS - 1) {
            req->tok_rest = true;
            break;
        }
        const char *start = s;
        while (s < end && *s != ' ') s++;
        req->tok[n].p = start;
        req->tok[n].n = (uint32_t)(s - start);
        n++;
    }
    req->tok[n].p = s;
    req->tok[n].n = 0;
    req->ntok = n + 1;
}

static bool
tok_is(const bc_mc_token_t *t, const char *lit)
{
    size_t n = strlen(lit);
    return t->n == n && memcmp(t->p, lit, n) == 0;
}

/* An unknown command: a stray HTTP request (last word "HTTP/...", as
 * memcached looks at it: the last of the tokens it split) is closed
 * without a reply, anything else is ERROR. */
static bc_status_t
parse_unknown(bc_mc_request_t *req)
{
    const bc_mc_token_t *last = &req->tok[req->ntok - 2];
    if (last->n >= 5 && memcmp(last->p, "HTTP/", 5) == 0) {
        req->close = true;
        return fail(req, NULL);
    }
    return fail(req, BC_MC_ERR_UNKNOWN);
}

/* get, gets, gat, gats: [rest, end) holds "[exptime] key...". */
static bc_status_t
parse_retrieval(const char *rest, const char *end, bc_mc_request_t *req)
{
    const char *cursor = rest, *key;
    size_t nkey;
    uint32_t nkeys = 0;

    if (req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS) {
        word_t w;
        if (!bc_mc_next_key(&cursor, end, &w.p, &nkey))
            return fail(req, BC_MC_ERR_UNKNOWN);
        w.n = (uint32_t)nkey;
        if (!parse_i32(&w, &req->exptime)) return fail(req, BC_MC_ERR_EXPTIME);
    }
    req->keys = cursor;
    req->keys_end = end;
    while (bc_mc_next_key(&cursor, end, &key, &nkey)) {
        if (!bc_mc_key_valid(key, nkey)) return fail(req, BC_MC_ERR_FORMAT);
        nkeys++;
    }
    /* "get" alone is ERROR; "gat 10" with no key is an empty hit list. */
    if (nkeys == 0 && (req->cmd == BC_MC_CMD_GET || req->cmd == BC_MC_CMD_GETS))
        return fail(req, BC_MC_ERR_UNKNOWN);
    req->nkeys = nkeys;
    return BC_OK;
}

static bool
last_is_noreply(const word_t *words, size_t nwords)
{
    return nwords <= MAX_WORDS && word_is(&words[nwords - 1], "noreply", 7);
}

static bc_status_t
set_key(bc_mc_request_t *req, const word_t *w)
{
    if (!bc_mc_key_valid(w->p, w->n)) return fail(req, BC_MC_ERR_FORMAT);
    req->key = w->p;
    req->nkey = w->n;
    return BC_OK;
}

/* set/add/replace/append/prepend: cmd key flags exptime bytes [noreply];
 * cas: cmd key flags exptime bytes cas [noreply]. */
static bc_status_t
parse_storage(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    bool is_cas = req->cmd == BC_MC_CMD_CAS;
    size_t base = is_cas ? 6 : 5;
    int64_t vlen;

    if (nw != base && nw != base + 1) return fail(req, BC_MC_ERR_UNKNOWN);
    req->noreply = last_is_noreply(w, nw);
    if (set_key(req, &w[1]) != BC_OK) return BC_EPROTO;
    if (!parse_u32(&w[2], &req->flags) || !parse_i32(&w[3], &req->exptime) ||
        !parse_i32(&w[4], &vlen))
        return fail(req, BC_MC_ERR_FORMAT);
    if (is_cas && !parse_u64(&w[5], &req->cas)) return fail(req, BC_MC_ERR_FORMAT);
    if (vlen < 0 || vlen > (int64_t)BC_MC_VALUE_MAX_LEN) return fail(req, BC_MC_ERR_FORMAT);
    req->vlen = (uint32_t)vlen;
    return BC_OK;
}

static bc_status_t
parse_arith(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    if (nw != 3 && nw != 4) return fail(req, BC_MC_ERR_UNKNOWN);
    req->noreply = last_is_noreply(w, nw);
    if (set_key(req, &w[1]) != BC_OK) return BC_EPROTO;
    if (!parse_u64(&w[2], &req->delta)) return fail(req, BC_MC_ERR_DELTA);
    return BC_OK;
}

/* delete key [0] [noreply]: the legacy "hold time" must be 0. */
static bc_status_t
parse_delete(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    if (nw < 2 || nw > 4) return fail(req, BC_MC_ERR_UNKNOWN);
    if (nw > 2) {
        bool hold_is_zero = word_is(&w[2], "0", 1);
        req->noreply = last_is_noreply(w, nw);
        bool valid = (nw == 3 && (hold_is_zero || req->noreply)) ||
                     (nw == 4 && hold_is_zero && req->noreply);
        if (!valid) return fail(req, BC_MC_ERR_DELETE_USAGE);
    }
    return set_key(req, &w[1]);
}

static bc_status_t
parse_touch(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    if (nw != 3 && nw != 4) return fail(req, BC_MC_ERR_UNKNOWN);
    req->noreply = last_is_noreply(w, nw);
    if (set_key(req, &w[1]) != BC_OK) return BC_EPROTO;
    if (!parse_i32(&w[2], &req->exptime)) return fail(req, BC_MC_ERR_EXPTIME);
    return BC_OK;
}

/* flush_all [delay] [noreply] */
static bc_status_t
parse_flush_all(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    if (nw > 3) return fail(req, BC_MC_ERR_UNKNOWN);
    if (nw > 1) req->noreply = last_is_noreply(w, nw);
    if (nw != (req->noreply ? 2u : 1u)) {
        if (!parse_i32(&w[1], &req->exptime)) return fail(req, BC_MC_ERR_EXPTIME);
        req->has_delay = true;
    }
    return BC_OK;
}

static bc_status_t
parse_verbosity(const word_t *w, size_t nw, bc_mc_request_t *req)
{
    uint32_t level;

    if (nw != 2 && nw != 3) return fail(req, BC_MC_ERR_UNKNOWN);
    req->noreply = last_is_noreply(w, nw);
    if (!parse_u32(&w[1], &level)) return fail(req, BC_MC_ERR_FORMAT);
    req->verbosity = level > BC_MC_MAX_VERBOSITY ? BC_MC_MAX_VERBOSITY : (uint32_t)level;
    return BC_OK;
}

/*
 * memcached 1.6.18's process_command_ascii: the first letter, then the
 * command word, then the token count (wrong count = "ERROR").  ntok is
 * memcached's ntokens (words + 1).
 */
static bc_mc_cmd_t
dispatch(bc_mc_request_t *req, bool *want_ok)
{
    const bc_mc_token_t *c = &req->tok[0];
    uint32_t nt = req->ntok;
    bc_mc_cmd_t cmd = BC_MC_CMD_NONE;

#define WANT_OR(a, b) (*want_ok = nt == (a) || nt == (b))
#define WANT(lo, hi) (*want_ok = nt >= (lo) && nt <= (hi))
#define WANT_MIN(lo) (*want_ok = nt >= (lo))
    *want_ok = true;
    if (c->p[0] == 'm' && c->n == 2) {
        switch (c->p[1]) {
        case 'g': return BC_MC_CMD_MG;
        case 's': return BC_MC_CMD_MS;
        case 'd': return BC_MC_CMD_MD;
        case 'n': return BC_MC_CMD_MN;
        case 'a': return BC_MC_CMD_MA;
        case 'e': return BC_MC_CMD_ME;
        default: *want_ok = false; return BC_MC_CMD_NONE;
        }
    }
    switch (c->p[0]) {
    case 'g':
        if (!WANT_MIN(3)) return BC_MC_CMD_NONE;
        if (tok_is(c, "get")) return BC_MC_CMD_GET;
        if (tok_is(c, "gets")) return BC_MC_CMD_GETS;
        if (tok_is(c, "gat")) return BC_MC_CMD_GAT;
        if (tok_is(c, "gats")) return BC_MC_CMD_GATS;
        *want_ok = false;
        return BC_MC_CMD_NONE;
    case 's':
        if (tok_is(c, "set")) {
            WANT_OR(6, 7);
            return BC_MC_CMD_SET;
        }
        if (tok_is(c, "stats")) return BC_MC_CMD_STATS;
        if (tok_is(c, "shutdown")) return BC_MC_CMD_SHUTDOWN;
        if (tok_is(c, "slabs")) return BC_MC_CMD_SLABS;
        *want_ok = false;
        return BC_MC_CMD_NONE;
    case 'a':
        if (tok_is(c, "add")) cmd = BC_MC_CMD_ADD;
        else if (tok_is(c, "append")) cmd = BC_MC_CMD_APPEND;
        if (cmd != BC_MC_CMD_NONE) WANT_OR(6, 7);
        else *want_ok = false;
        return cmd;
    case 'c':
        if (tok_is(c, "cas")) {
            WANT_OR(7, 8);
            return BC_MC_CMD_CAS;
        }
        if (tok_is(c, "cache_memlimit")) {
            WANT_OR(3, 4);
            return BC_MC_CMD_CACHE_MEMLIMIT;
        }
        *want_ok = false;
        return BC_MC_CMD_NONE;
    case 'i':
        if (tok_is(c, "incr")) {
            WANT_OR(4, 5);
            return BC_MC_CMD_INCR;
        }
        *want_ok = false;
        return BC_MC_CMD_NONE;
    case 'd':
        if (tok_is(c, "delete")) {
            WANT(3, 5);
            return BC_MC_CMD_DELETE;
        }
        if (tok_is(c, "decr")) {
            WANT_OR(4, 5);
            return BC_MC_CMD_DECR;
        }
        *want_ok = false;
        return BC_MC_CMD_NONE;
    case 't':
        if (tok_is(c, "touch")) {
            WANT_OR(4, 5);
            return BC_MC_CMD_TOUCH;
        }
        *want_ok = false;
        return BC_MC_CMD_NONE;
    default:
        break;
    }
    if (tok_is(c, "replace") || tok_is(c, "prepend")) {
        WANT_OR(6, 7);
        return tok_is(c, "replace") ? BC_MC_CMD_REPLACE : BC_MC_CMD_PREPEND;
    }
    if (tok_is(c, "bget")) {                 /* memcached's ancient alias of get */
        WANT_MIN(3);
        return BC_MC_CMD_GET;
    }
    if (tok_is(c, "flush_all")) {
        WANT(2, 4);
        return BC_MC_CMD_FLUSH_ALL;
    }
    if (tok_is(c, "version")) return BC_MC_CMD_VERSION;
    if (tok_is(c, "quit")) return BC_MC_CMD_QUIT;
    if (tok_is(c, "lru_crawler")) return BC_MC_CMD_LRU_CRAWLER;
    if (tok_is(c, "watch")) return BC_MC_CMD_WATCH;
    if (tok_is(c, "verbosity")) {
        WANT_OR(3, 4);
        return BC_MC_CMD_VERBOSITY;
    }
    if (tok_is(c, "lru")) {
        WANT_MIN(3);
        return BC_MC_CMD_LRU;
    }
    if (tok_is(c, "refresh_certs")) return BC_MC_CMD_REFRESH_CERTS;
#undef WANT_OR
#undef WANT
#undef WANT_MIN
    return BC_MC_CMD_NONE;
}

bc_status_t
bc_mc_request_parse(const char *line, size_t len, bc_mc_request_t *req)
{
    const char *end, *s, *nul;
    word_t words[MAX_WORDS];
    size_t nwords;
    bool want_ok;

    memset(req, 0, sizeof(*req));
    /* memcached strips the "\r" of a line longer than one byte, then reads
     * the line as a C string: it ends at a NUL. */
    if (len > 1 && line[len - 1] == '\r') len--;
    nul = memchr(line, '\0', len);
    if (nul != NULL) len = (size_t)(nul - line);
    end = line + len;

    tokenize(line, end, req);
    if (req->ntok < 2 || req->tok[0].n < 2) return fail(req, BC_MC_ERR_UNKNOWN);
    req->cmd = dispatch(req, &want_ok);
    if (req->cmd == BC_MC_CMD_NONE) {
        if (!want_ok) return fail(req, BC_MC_ERR_UNKNOWN);
        return parse_unknown(req);
    }
    if (!want_ok) return fail(req, BC_MC_ERR_UNKNOWN);

    s = req->tok[0].p + req->tok[0].n;
    switch (req->cmd) {
    case BC_MC_CMD_GET:
    case BC_MC_CMD_GETS:
    case BC_MC_CMD_GAT:
    case BC_MC_CMD_GATS:
        return parse_retrieval(s, end, req);
    case BC_MC_CMD_VERSION:
    case BC_MC_CMD_QUIT:
    case BC_MC_CMD_MG:
    case BC_MC_CMD_MS:
    case BC_MC_CMD_MD:
    case BC_MC_CMD_MA:
    case BC_MC_CMD_MN:
    case BC_MC_CMD_ME:
    case BC_MC_CMD_SHUTDOWN:
    case BC_MC_CMD_CACHE_MEMLIMIT:
    case BC_MC_CMD_SLABS:
    case BC_MC_CMD_LRU:
    case BC_MC_CMD_LRU_CRAWLER:
    case BC_MC_CMD_WATCH:
    case BC_MC_CMD_REFRESH_CERTS:
        return BC_OK;                       /* the executor reads tok[] */
    default:
        break;
    }

    nwords = split_words(req->tok[0].p, end, words, MAX_WORDS);
    switch (req->cmd) {
    case BC_MC_CMD_SET:
    case BC_MC_CMD_ADD:
    case BC_MC_CMD_REPLACE:
    case BC_MC_CMD_APPEND:
    case BC_MC_CMD_PREPEND:
    case BC_MC_CMD_CAS:
        return parse_storage(words, nwords, req);
    case BC_MC_CMD_INCR:
    case BC_MC_CMD_DECR:
        return parse_arith(words, nwords, req);
    case BC_MC_CMD_DELETE:
        return parse_delete(words, nwords, req);
    case BC_MC_CMD_TOUCH:
        return parse_touch(words, nwords, req);
    case BC_MC_CMD_FLUSH_ALL:
        return parse_flush_all(words, nwords, req);
    case BC_MC_CMD_VERBOSITY:
        return parse_verbosity(words, nwords, req);
    case BC_MC_CMD_STATS:
        if (nwords >= 2) {
            req->subcmd = words[1].p;
            req->nsubcmd = words[1].n;
        }
        return BC_OK;
    default:
        return fail(req, BC_MC_ERR_UNKNOWN);
    }
}

size_t
bc_mc_u64_to_dec(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

/* ---- reply side ---- */

#define REPLY_LINE_MAX 4096u

/* Strict unsigned decimal for replies: digits only. */
static bool
reply_u64(const word_t *w, uint64_t *out)
{
    uint64_t v = 0;

    if (w->n == 0 || w->n > 20) return false;
    for (uint32_t i = 0; i < w->n; i++) {
        unsigned char c = (unsigned char)w->p[i];
        if (c < '0' || c > '9') return false;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void
reply_text(bc_mc_reply_t *r, const char *line, size_t n, size_t skip)
{
    if (n > skip && line[skip] == ' ') skip++;
    if (skip > n) skip = n;
    r->text = line + skip;
    r->ntext = (uint32_t)(n - skip);
}

static bool
starts_with_word(const char *line, size_t n, const char *lit, size_t nlit)
{
    return n >= nlit && memcmp(line, lit, nlit) == 0 && (n == nlit || line[nlit] == ' ');
}

bc_status_t
bc_mc_reply_parse(const char *buf, size_t len, bc_mc_reply_t *r, size_t *consumed)
{
    const char *nl;
    size_t n, linelen;

    memset(r, 0, sizeof(*r));
    r->text = "";
    nl = memchr(buf, '\n', len < REPLY_LINE_MAX ? len : REPLY_LINE_MAX);
    if (nl == NULL) return len >= REPLY_LINE_MAX ? BC_EPROTO : BC_EAGAIN;
    linelen = (size_t)(nl - buf) + 1;
    if (nl == buf || nl[-1] != '\r') return BC_EPROTO;
    n = linelen - 2;                          /* without CRLF */

    static const struct {
        const char *text;
        size_t n;
        bc_mc_reply_kind_t kind;
    } fixed[] = {
        {"END", 3, BC_MC_REPLY_END},
        {"STORED", 6, BC_MC_REPLY_STORED},
        {"NOT_STORED", 10, BC_MC_REPLY_NOT_STORED},
        {"EXISTS", 6, BC_MC_REPLY_EXISTS},
        {"NOT_FOUND", 9, BC_MC_REPLY_NOT_FOUND},
        {"DELETED", 7, BC_MC_REPLY_DELETED},
        {"TOUCHED", 7, BC_MC_REPLY_TOUCHED},
        {"OK", 2, BC_MC_REPLY_OK},
        {"RESET", 5, BC_MC_REPLY_RESET},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (n == fixed[i].n && memcmp(buf, fixed[i].text, n) == 0) {
            r->kind = fixed[i].kind;
            *consumed = linelen;
            return BC_OK;
        }
    }

    if (starts_with_word(buf, n, "VALUE", 5)) {
        word_t w[6];
        uint64_t flags, vlen;
        size_t nw = split_words(buf, buf + n, w, 6);
        if (nw != 4 && nw != 5) return BC_EPROTO;
        if (w[1].n == 0 || w[1].n > BC_MC_KEY_MAX_LEN) return BC_EPROTO;
        if (!reply_u64(&w[2], &flags) || flags > UINT32_MAX) return BC_EPROTO;
        if (!reply_u64(&w[3], &vlen) || vlen > BC_MC_VALUE_MAX_LEN) return BC_EPROTO;
        if (nw == 5) {
            if (!reply_u64(&w[4], &r->cas)) return BC_EPROTO;
            r->has_cas = true;
        }
        if (len - linelen < vlen + 2) return BC_EAGAIN;
        if (buf[linelen + vlen] != '\r' || buf[linelen + vlen + 1] != '\n') return BC_EPROTO;
        r->kind = BC_MC_REPLY_VALUE;
        r->key = w[1].p;
        r->nkey = w[1].n;
        r->flags = (uint32_t)flags;
        r->vlen = (uint32_t)vlen;
        r->value = buf + linelen;
        *consumed = linelen + (size_t)vlen + 2;
        return BC_OK;
    }
    if (starts_with_word(buf, n, "STAT", 4)) {
        const char *name = buf + 5, *end = buf + n, *sp;
        if (n < 6) return BC_EPROTO;
        sp = memchr(name, ' ', (size_t)(end - name));
        r->kind = BC_MC_REPLY_STAT;
        r->text = name;
        r->ntext = (uint32_t)((sp ? sp : end) - name);
        r->stat_value = sp ? sp + 1 : end;
        r->nstat_value = (uint32_t)(end - r->stat_value);
        *consumed = linelen;
        return BC_OK;
    }
    if (starts_with_word(buf, n, "VERSION", 7)) {
        r->kind = BC_MC_REPLY_VERSION;
        reply_text(r, buf, n, 7);
    } else if (starts_with_word(buf, n, "ERROR", 5)) {
        r->kind = BC_MC_REPLY_ERROR;
        reply_text(r, buf, n, 5);
    } else if (starts_with_word(buf, n, "CLIENT_ERROR", 12)) {
        r->kind = BC_MC_REPLY_CLIENT_ERROR;
        reply_text(r, buf, n, 12);
    } else if (starts_with_word(buf, n, "SERVER_ERROR", 12)) {
        r->kind = BC_MC_REPLY_SERVER_ERROR;
        reply_text(r, buf, n, 12);
    } else {
        /* incr/decr: a decimal number, possibly followed by the spaces
         * nothing sends but old servers padded with. */
        word_t w = {buf, (uint32_t)n};
        while (w.n > 0 && w.p[w.n - 1] == ' ') w.n--;
        if (!reply_u64(&w, &r->number)) return BC_EPROTO;
        r->kind = BC_MC_REPLY_NUMBER;
    }
    *consumed = linelen;
    return BC_OK;
}
