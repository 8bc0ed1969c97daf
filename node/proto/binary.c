/*
 * binary.c -- memcached's binary protocol on the data port: a connection
 * whose first byte is 0x80 (BC_PROTO_BIN_MAGIC) speaks it, like
 * memcached 1.6.18's default "-B auto" (proto_text.c decides; this file
 * runs the packets).  binary.h has the packet layout.
 *
 * Every reply was checked against memcached 1.6.18's proto_bin.c and the
 * real server (tests/integration/test_binary_protocol.py sends the same
 * packet streams to both).  Its rules, quirks included:
 *
 *   - a quiet opcode (getq, setq, ...) hides the success reply -- and a
 *     get's miss -- but never an error; a getq hit is sent; the response
 *     carries the opcode as it came;
 *   - the header is checked before anything else: keylen or keylen +
 *     extlen over bodylen is "Unknown command" and the connection closes;
 *     a key over 250 bytes is "Invalid arguments" and closes; then each
 *     opcode checks its extras, key and body lengths, a mismatch being
 *     "Invalid arguments" and a close; a bad magic closes without a reply;
 *   - only header, extras and key are consumed before a command runs; a
 *     command that ignores the rest of its body (stat, touch, gat, ...)
 *     leaves it to be read as the next packet, an unknown opcode swallows
 *     bodylen MORE bytes (memcached's write_bin_error(..., bodylen)), and
 *     the SASL opcodes (no SASL here) answer "Unknown command" swallowing
 *     their value;
 *   - set/add/replace with a CAS is a cas; a failed store answers add
 *     EEXISTS, replace ENOENT, the others NOT_STORED; a value too large is
 *     E2BIG and swallowed, and a set then removes the key's old value;
 *   - incr/decr of a missing key creates it with the initial value and
 *     the expiry, unless the expiry is 0xffffffff (then ENOENT); a CAS
 *     given must match; the reply is the value as 8 bytes, with the CAS;
 *   - flush takes an optional 4-byte delay; stat answers one packet per
 *     figure and an empty one, for "" (everything), "settings", "items",
 *     "slabs", "sizes", "reset", "detail on|off|dump"; any other key ENOENT.
 *     verbosity (0x1b) is unknown to memcached 1.6.18, and so here.
 *
 * In a cluster a key is routed as the text command it mirrors would be
 * (proto_text.c): served, refused, or forwarded to the owner's primary.
 * BEHAVIOR: a refusal is status 0x07 (memcached's NOT_MY_VBUCKET: "this
 * key lives elsewhere") with the refusal's text ("MOVED <bucket> <group>
 * <epoch>", ...) as body; a get of a bucket without owner is a miss, as
 * in text.  A forwarded command is translated into the meta command that
 * does the same (the peer connection speaks text): mg for get/gat/touch,
 * ms for the stores, md, ma, followed by "mn"; the key goes as it is when
 * it is printable ASCII, else in base64 ("b").  The binary reply is
 * composed from the owner's meta reply when it comes (compose_*), in the
 * command's place in the reply stream (proto_fwd.c's holes), so replies
 * keep request order, quiet commands included, and a noop answers after
 * everything before it.  A forwarding failure is status 0x86 (temporary
 * failure) with the text's error as body.  A write in its bucket's
 * migration pause waits as a text one does (proto_text.h): held whole
 * here (bin_route), or -- forwarded -- its meta request sent again.
 *
 * Read-through (proto_origin.c): a get/getq/getk/getkq served here that
 * misses on a key with an origin waits for the fill in a hole of the
 * output queue; the packet then runs again into it (pc->meta_rerun), so
 * the one get path answers a filled key as a hit.  Forwarded, the owner's
 * mg reads through.  gat/touch do not (they write the expiry).
 */
#include "proto/binary.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_mcmeta.h"
#include "bc_wire.h"
#include "proto/proto_int.h"

/* ------------------------------------------------------------------------ */
/* the packet layout (binary.h)                                             */
/* ------------------------------------------------------------------------ */

void
bc_binary_header_decode(const void *p, bc_binary_header_t *h)
{
    const unsigned char *b = p;
    h->magic = b[0];
    h->opcode = b[1];
    h->keylen = bc_binary_get16(b + 2);
    h->extlen = b[4];
    h->bodylen = bc_binary_get32(b + 8);
    memcpy(&h->opaque, b + 12, 4);
    h->cas = bc_binary_get64(b + 16);
}

void
bc_binary_response_header(void *out, uint8_t opcode, uint16_t status, uint8_t extlen,
                       uint16_t keylen, uint32_t bodylen, uint32_t opaque, uint64_t cas)
{
    unsigned char *b = out;
    b[0] = BC_BIN_RES_MAGIC;
    b[1] = opcode;
    bc_binary_put16(b + 2, keylen);
    b[4] = extlen;
    b[5] = 0;
    bc_binary_put16(b + 6, status);
    bc_binary_put32(b + 8, bodylen);
    memcpy(b + 12, &opaque, 4);
    bc_binary_put64(b + 16, cas);
}

uint8_t
bc_binary_unquiet(uint8_t opcode, bool *quiet)
{
    *quiet = true;
    switch (opcode) {
    case BC_BIN_SETQ: return BC_BIN_SET;
    case BC_BIN_ADDQ: return BC_BIN_ADD;
    case BC_BIN_REPLACEQ: return BC_BIN_REPLACE;
    case BC_BIN_DELETEQ: return BC_BIN_DELETE;
    case BC_BIN_INCREMENTQ: return BC_BIN_INCREMENT;
    case BC_BIN_DECREMENTQ: return BC_BIN_DECREMENT;
    case BC_BIN_QUITQ: return BC_BIN_QUIT;
    case BC_BIN_FLUSHQ: return BC_BIN_FLUSH;
    case BC_BIN_APPENDQ: return BC_BIN_APPEND;
    case BC_BIN_PREPENDQ: return BC_BIN_PREPEND;
    case BC_BIN_GETQ: return BC_BIN_GET;
    case BC_BIN_GETKQ: return BC_BIN_GETK;
    case BC_BIN_GATQ: return BC_BIN_GAT;
    case BC_BIN_GATKQ: return BC_BIN_GATK;
    default: *quiet = false; return opcode;
    }
}

const char *
bc_binary_status_text(uint16_t status)
{
    switch (status) {
    case BC_BIN_ENOMEM: return "Out of memory";
    case BC_BIN_UNKNOWN_COMMAND: return "Unknown command";
    case BC_BIN_KEY_ENOENT: return "Not found";
    case BC_BIN_EINVAL: return "Invalid arguments";
    case BC_BIN_KEY_EEXISTS: return "Data exists for key.";
    case BC_BIN_E2BIG: return "Too large.";
    case BC_BIN_DELTA_BADVAL: return "Non-numeric server-side value for incr or decr";
    case BC_BIN_NOT_STORED: return "Not stored.";
    case BC_BIN_AUTH_ERROR: return "Auth failure.";
    default: return "";
    }
}

/* ------------------------------------------------------------------------ */
/* replies                                                                  */
/* ------------------------------------------------------------------------ */

/* What a reply echoes of its request. */
typedef struct bin_id {
    uint8_t opcode;                /* as it came */
    uint32_t opaque;
} bin_id_t;

/* One response into q: header, extras, key, value (copied). */
static void
put_reply(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, uint16_t status, const void *ext,
          uint8_t extlen, const char *key, uint16_t nkey, const char *val, uint32_t vlen,
          uint64_t cas)
{
    bool copy = vlen <= BC_PROTO_COPY_MAX;
    size_t head = BC_BIN_HEADER_LEN + extlen + nkey;
    char *p = bc_outq_reserve(q, head + (copy ? vlen : 0));
    if (p == NULL) {
        pc->oom = true;
        return;
    }
    bc_binary_response_header(p, id.opcode, status, extlen, nkey, (uint32_t)extlen + nkey + vlen,
                           id.opaque, cas);
    if (extlen > 0) memcpy(p + BC_BIN_HEADER_LEN, ext, extlen);
    if (nkey > 0) memcpy(p + BC_BIN_HEADER_LEN + extlen, key, nkey);
    if (copy && vlen > 0) memcpy(p + head, val, vlen);
    if (!bc_outq_commit(q, head + (copy ? vlen : 0))) {
        pc->oom = true;
        return;
    }
    if (copy) return;
    char *v = malloc(vlen);
    if (v == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(v, val, vlen);
    if (!bc_outq_add_owned(q, v, vlen)) pc->oom = true;
}

/* An error response: memcached's text for status, or msg. */
static void
put_error(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, uint16_t status, const char *msg,
          size_t nmsg)
{
    if (msg == NULL) {
        msg = bc_binary_status_text(status);
        nmsg = strlen(msg);
    }
    put_reply(pc, q, id, status, NULL, 0, NULL, 0, msg, (uint32_t)nmsg, 0);
}

/* A success without body (a store, delete, flush, ...): nothing when quiet. */
static void
put_done(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, bool quiet, uint64_t cas)
{
    if (!quiet) put_reply(pc, q, id, BC_BIN_OK, NULL, 0, NULL, 0, NULL, 0, cas);
}

/* A get's miss: nothing when quiet; getk/gatk echo the key, with no text. */
static void
put_miss(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, bool quiet, bool with_key,
         const char *key, uint16_t nkey)
{
    if (quiet) return;
    if (with_key) {
        put_reply(pc, q, id, BC_BIN_KEY_ENOENT, NULL, 0, key, nkey, NULL, 0, 0);
    } else {
        put_error(pc, q, id, BC_BIN_KEY_ENOENT, NULL, 0);
    }
}

/* A refusal (cluster.h) as status 0x07, its text without "SERVER_ERROR ". */
static void
put_refusal_text(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, const char *line, size_t n)
{
    static const char se[] = "SERVER_ERROR ";
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (n >= sizeof(se) - 1 && memcmp(line, se, sizeof(se) - 1) == 0) {
        line += sizeof(se) - 1;
        n -= sizeof(se) - 1;
    }
    put_error(pc, q, id, BC_BIN_NOT_MY_VBUCKET, line, n);
}

static void
put_refusal(bc_proto_conn_t *pc, bin_id_t id, const bc_proto_route_t *r)
{
    char line[REFUSAL_MAX];
    size_t n = bc__proto_refusal(r, line);
    put_refusal_text(pc, &pc->out, id, line, n);
}

static bool
contains(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        if (memcmp(s + i, word, w) == 0) return true;
    }
    return false;
}

/*
 * An error line of the text protocol (a forwarded command's owner, or
 * the forwarder) as a binary error response.
 */
static void
put_text_error(bc_proto_conn_t *pc, bc_outq_t *q, bin_id_t id, const char *line, size_t n)
{
    static const char se[] = "SERVER_ERROR ", ce[] = "CLIENT_ERROR ";
    static const char nonnum[] = "CLIENT_ERROR cannot increment or decrement non-numeric value";
    size_t len = n;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (len >= sizeof(se) - 1 && memcmp(line, se, sizeof(se) - 1) == 0) {
        bc_wire_refusal_t ref;
        const char *t = line + sizeof(se) - 1;
        size_t tn = len - (sizeof(se) - 1);
        if (bc_wire_refusal_parse(t, tn, &ref) != BC_WIRE_REFUSAL_NONE) {
            put_refusal_text(pc, q, id, line, len);
        } else if (contains(t, tn, "out of memory") &&
                   bc_wire_fwd_failure_parse(t, tn) == BC_WIRE_FWD_NONE) {
            put_error(pc, q, id, BC_BIN_ENOMEM, NULL, 0);
        } else if (contains(t, tn, "too large") &&
                   bc_wire_fwd_failure_parse(t, tn) == BC_WIRE_FWD_NONE) {
            put_error(pc, q, id, BC_BIN_E2BIG, NULL, 0);
        } else {
            put_error(pc, q, id, BC_BIN_ETMPFAIL, t, tn);
        }
    } else if (len == sizeof(nonnum) - 1 && memcmp(line, nonnum, len) == 0) {
        put_error(pc, q, id, BC_BIN_DELTA_BADVAL, NULL, 0);
    } else if (len >= sizeof(ce) - 1 && memcmp(line, ce, sizeof(ce) - 1) == 0) {
        put_error(pc, q, id, BC_BIN_EINVAL, NULL, 0);
    } else {
        put_error(pc, q, id, BC_BIN_UNKNOWN_COMMAND, NULL, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* one request                                                              */
/* ------------------------------------------------------------------------ */

typedef struct bin_req {
    bin_id_t id;
    uint8_t cmd;                   /* the opcode without its quiet form */
    bool quiet;
    uint8_t extlen;
    uint16_t nkey;
    uint32_t bodylen;
    uint64_t cas;
    const unsigned char *ext;
    const char *key;
    const char *pkt;               /* the packet: header, extras, key */
    size_t npkt;
} bin_req_t;

/* A forwarded command's context (proto_fwd.c hands it to compose). */
typedef struct bin_fwd_ctx {
    bin_id_t id;
    uint8_t cmd;
    bool quiet;
    bool plain;                    /* a client connection that forwards: NO_OWNER is a miss */
    bc_store_mode_t mode;          /* stores */
    bool too_large;                /* a set too large: "md" sent, E2BIG answered */
    uint16_t nkey;
    char key[BC_MC_KEY_MAX_LEN];
} bin_fwd_ctx_t;

static bin_fwd_ctx_t *
fwd_ctx(bc_proto_conn_t *pc, const bin_req_t *r, bc_store_mode_t mode)
{
    bin_fwd_ctx_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        pc->oom = true;
        return NULL;
    }
    c->id = r->id;
    c->cmd = r->cmd;
    c->quiet = r->quiet;
    c->plain = pc->fwd != NULL && !pc->peer;
    c->mode = mode;
    c->too_large = false;
    c->nkey = r->nkey;
    memcpy(c->key, r->key, r->nkey);
    return c;
}

/* Room for a key as a meta token: base64 of 250 bytes, " b", NUL. */
#define META_KEY_MAX 352

/*
 * The key as a meta token in out (NUL-terminated): as it is when every
 * byte is printable ASCII, else base64 (*b64: the request needs "b").  Returns the token's length, 0 when
 * the key cannot travel as a meta key (a base64 key over 250 bytes --
 * memcached's limit applies to the token -- i.e. a key of more than 187
 * bytes with other bytes).
 */
static size_t
meta_key(const char *key, size_t nkey, char *out, bool *b64)
{
    bool plain = true;
    *b64 = false;
    for (size_t i = 0; i < nkey && plain; i++) {
        unsigned char c = (unsigned char)key[i];
        plain = c > 0x20 && c < 0x7f;
    }
    if (plain) {
        memcpy(out, key, nkey);
        out[nkey] = '\0';
        return nkey;
    }
    size_t n = bc_mc_meta_base64_encode(key, nkey, out, META_KEY_MAX - 3);
    if (n == 0 || n > BC_MC_KEY_MAX_LEN) return 0;
    out[n] = '\0';
    *b64 = true;
    return n;
}

/* A binary exptime as a meta T/N value (int32: later ones are clamped). */
static int64_t
meta_ttl(uint32_t exptime)
{
    return exptime > (uint32_t)INT32_MAX ? INT32_MAX : (int64_t)exptime;
}

static void compose(bc_proto_conn_t *pc, void *arg, const char *text, size_t len,
                    bc_outq_t *dst);

/* Forwards r as the meta request line fmt (its key as %s first), with "mn". */
static void __attribute__((format(printf, 4, 5)))
fwd_meta(bc_proto_conn_t *pc, const bin_req_t *r, const bc_proto_route_t *route,
         const char *fmt, ...)
{
    bin_fwd_ctx_t *c = fwd_ctx(pc, r, BC_STORE_SET);
    if (c == NULL) return;
    size_t cap = META_KEY_MAX + 160;
    char *buf = malloc(cap);
    if (buf == NULL) {
        free(c);
        pc->oom = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap - 4, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - 4) {
        free(buf);
        free(c);
        put_error(pc, &pc->out, r->id, BC_BIN_EINVAL, NULL, 0);
        return;
    }
    memcpy(buf + n, "mn\r\n", 4);
    bc__proto_fwd_command_bin(pc, route, buf, (size_t)n + 4, compose, c);
}

/* ------------------------------------------------------------------------ */
/* forwarded replies                                                        */
/* ------------------------------------------------------------------------ */

/* A meta reply's first line, split: its code ("VA", "HD", ...), its
 * flags, where the line ends (after CRLF). */
typedef struct meta_line {
    const char *p;
    size_t n;                      /* without CRLF */
    size_t next;                   /* offset after CRLF */
    uint64_t vlen, flags, cas;
} meta_line_t;

static bool
meta_line(const char *text, size_t len, meta_line_t *m)
{
    const char *nl = memchr(text, '\n', len);
    if (nl == NULL) return false;
    m->p = text;
    m->n = (size_t)(nl - text);
    if (m->n > 0 && text[m->n - 1] == '\r') m->n--;
    m->next = (size_t)(nl - text) + 1;
    m->vlen = m->flags = m->cas = 0;
    /* tokens after the code */
    size_t i = 2;
    bool first = m->n >= 3 && memcmp(text, "VA ", 3) == 0;
    while (i < m->n) {
        while (i < m->n && text[i] == ' ') i++;
        size_t s = i;
        while (i < m->n && text[i] != ' ') i++;
        if (s == i) break;
        uint64_t v = 0;
        size_t d = s + (first ? 0 : 1);
        for (size_t k = d; k < i && text[k] >= '0' && text[k] <= '9'; k++) {
            v = v * 10 + (uint64_t)(text[k] - '0');
        }
        if (first) {
            m->vlen = v;
            first = false;
        } else if (text[s] == 'f') {
            m->flags = v;
        } else if (text[s] == 'c') {
            m->cas = v;
        }
    }
    return true;
}

static bool
code_is(const meta_line_t *m, const char *code)
{
    return (m->n == 2 || (m->n > 2 && m->p[2] == ' ')) && memcmp(m->p, code, 2) == 0;
}

/* The binary reply of a forwarded command, from its text answer. */
static void
compose(bc_proto_conn_t *pc, void *arg, const char *text, size_t len, bc_outq_t *dst)
{
    bin_fwd_ctx_t *c = arg;
    meta_line_t m;
    bool with_key = c->cmd == BC_BIN_GETK || c->cmd == BC_BIN_GATK;

    if (!meta_line(text, len, &m) || m.n < 2) {
        put_error(pc, dst, c->id, BC_BIN_ETMPFAIL, NULL, 0);
        return;
    }
    if (c->too_large) {
        /* the old value's removal: done (quiet md, then MN) or an error */
        if (code_is(&m, "MN") || code_is(&m, "HD") || code_is(&m, "NF")) {
            put_error(pc, dst, c->id, BC_BIN_E2BIG, NULL, 0);
        } else {
            put_text_error(pc, dst, c->id, m.p, m.n);
        }
        return;
    }
    if (c->cmd == BC_BIN_FLUSH) {
        if (m.n == 2 && memcmp(m.p, "OK", 2) == 0) put_done(pc, dst, c->id, c->quiet, 0);
        else put_text_error(pc, dst, c->id, m.p, m.n);
        return;
    }
    bool is_get = c->cmd == BC_BIN_GET || c->cmd == BC_BIN_GETK || c->cmd == BC_BIN_GAT ||
                  c->cmd == BC_BIN_GATK;
    if (code_is(&m, "VA") && (is_get || c->cmd == BC_BIN_INCREMENT ||
                              c->cmd == BC_BIN_DECREMENT)) {
        if (m.next + m.vlen + 2 > len) {
            put_error(pc, dst, c->id, BC_BIN_ETMPFAIL, NULL, 0);
            return;
        }
        const char *v = text + m.next;
        if (is_get) {
            unsigned char ext[4];
            bc_binary_put32(ext, (uint32_t)m.flags);
            put_reply(pc, dst, c->id, BC_BIN_OK, ext, 4, with_key ? c->key : NULL,
                      with_key ? c->nkey : 0, v, (uint32_t)m.vlen, m.cas);
            return;
        }
        uint64_t num = 0;
        for (uint64_t i = 0; i < m.vlen && v[i] >= '0' && v[i] <= '9'; i++) {
            num = num * 10 + (uint64_t)(v[i] - '0');
        }
        if (!c->quiet) {
            unsigned char body[8];
            bc_binary_put64(body, num);
            put_reply(pc, dst, c->id, BC_BIN_OK, NULL, 0, NULL, 0, (const char *)body, 8, m.cas);
        }
        return;
    }
    if (code_is(&m, "HD")) {
        if (c->cmd == BC_BIN_TOUCH) {
            unsigned char ext[4];
            bc_binary_put32(ext, (uint32_t)m.flags);
            put_reply(pc, dst, c->id, BC_BIN_OK, ext, 4, NULL, 0, NULL, 0, m.cas);
        } else {
            put_done(pc, dst, c->id, c->quiet, c->cmd == BC_BIN_DELETE ? 0 : m.cas);
        }
        return;
    }
    if (code_is(&m, "EN") || code_is(&m, "NF")) {
        if (is_get) {
            put_miss(pc, dst, c->id, c->quiet, with_key, c->key, c->nkey);
        } else {
            put_error(pc, dst, c->id, BC_BIN_KEY_ENOENT, NULL, 0);
        }
        return;
    }
    if (code_is(&m, "EX")) {
        put_error(pc, dst, c->id, BC_BIN_KEY_EEXISTS, NULL, 0);
        return;
    }
    if (code_is(&m, "NS")) {
        uint16_t st = c->mode == BC_STORE_ADD       ? BC_BIN_KEY_EEXISTS
                      : c->mode == BC_STORE_REPLACE ? BC_BIN_KEY_ENOENT
                                                    : BC_BIN_NOT_STORED;
        put_error(pc, dst, c->id, st, NULL, 0);
        return;
    }
    /* An error line.  A get of a bucket without owner (the owner's table
     * is newer than ours) reads as a miss, as in text. */
    static const char se[] = "SERVER_ERROR ";
    bc_wire_refusal_t ref;
    if (is_get && c->plain && m.n > sizeof(se) - 1 && memcmp(m.p, se, sizeof(se) - 1) == 0 &&
        bc_wire_refusal_parse(m.p + sizeof(se) - 1, m.n - (sizeof(se) - 1), &ref) ==
            BC_WIRE_REFUSAL_NO_OWNER) {
        bc__proto_count_unanswered(pc, 1, true);
        put_miss(pc, dst, c->id, c->quiet, with_key, c->key, c->nkey);
        return;
    }
    put_text_error(pc, dst, c->id, m.p, m.n);
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Routes r's key as the text command it mirrors would be: BC_PROTO_SERVE,
 * BC_PROTO_FORWARD (route says where), or BC_PROTO_REFUSE when it has
 * been answered here (the refusal; a retrieval's miss for a bucket
 * without owner on a client connection that forwards, as in text) -- or
 * not answered at all because the write waits out its bucket's migration
 * pause (pc->ro_hold: the caller changes nothing, and the packet is
 * presented again from the worker's timer, see bc__proto_bin_packet).
 */
static bc_proto_action_t
bin_route(bc_proto_conn_t *pc, const bin_req_t *r, uint32_t hash, bool write, bool retrieval,
          bc_proto_route_t *route)
{
    if (pc->env->cluster == NULL) return BC_PROTO_SERVE;
    bc_proto_action_t a = bc__proto_route(pc, hash, write, route);
    if (a != BC_PROTO_REFUSE) return a;
    if (write && bc__proto_hold_for_pause(pc, route)) return BC_PROTO_REFUSE;
    bool with_key = r->cmd == BC_BIN_GETK || r->cmd == BC_BIN_GATK;
    if (retrieval && pc->fwd != NULL && !pc->peer && route->why == BC_ROUTE_NO_OWNER) {
        bc__proto_count_unanswered(pc, 1, true);
        put_miss(pc, &pc->out, r->id, r->quiet, with_key, r->key, r->nkey);
    } else {
        put_refusal(pc, r->id, route);
    }
    return BC_PROTO_REFUSE;
}

/* The key cannot travel as a meta key (meta_key): answered here. */
static void
put_unforwardable(bc_proto_conn_t *pc, const bin_req_t *r)
{
    static const char msg[] = "key cannot be forwarded";
    put_error(pc, &pc->out, r->id, BC_BIN_ETMPFAIL, msg, sizeof(msg) - 1);
}

/* get getq getk getkq gat gatq gatk gatkq touch */
static void
bin_get(bc_proto_conn_t *pc, const bin_req_t *r)
{
    bc_cache_t *cache = pc->env->cache;
    bool touch = r->cmd == BC_BIN_TOUCH || r->cmd == BC_BIN_GAT || r->cmd == BC_BIN_GATK;
    bool with_key = r->cmd == BC_BIN_GETK || r->cmd == BC_BIN_GATK;
    bool value = r->cmd != BC_BIN_TOUCH;
    uint32_t exp = touch ? bc_binary_get32(r->ext) : 0;
    uint32_t hash = bc_hash_key(r->key, r->nkey);
    bc_proto_route_t route;

    /* A get running again after its origin fill is served here whatever
     * the route says now (its hole is in this connection's queue). */
    bc_proto_action_t a = pc->meta_rerun ? BC_PROTO_SERVE
                                         : bin_route(pc, r, hash, touch, value, &route);
    if (a == BC_PROTO_REFUSE) return;
    if (a == BC_PROTO_FORWARD) {
        char k[META_KEY_MAX];
        bool b64;
        if (meta_key(r->key, r->nkey, k, &b64) == 0) {
            put_unforwardable(pc, r);
        } else if (!touch) {
            fwd_meta(pc, r, &route, "mg %s%s v f c\r\n", k, b64 ? " b" : "");
        } else {
            fwd_meta(pc, r, &route, "mg %s%s%s f c T%" PRId64 "\r\n", k, b64 ? " b" : "",
                     value ? " v" : "", meta_ttl(exp));
        }
        return;
    }

    bc_item_t *it = touch ? bc_cache_get_touch(cache, r->key, r->nkey, hash,
                                               bc_cache_exptime_abs(cache, exp))
                          : bc_cache_get(cache, r->key, r->nkey, hash);
    if (it == NULL && !touch) {
        /* read-through (proto_origin.c): a fill answers it later, this
         * packet running again into its place in the reply stream */
        bool look_again;
        if (bc__proto_origin_bin(pc, r->pkt, r->npkt, r->key, r->nkey, hash, &look_again)) {
            return;
        }
        if (look_again) it = bc_cache_get(cache, r->key, r->nkey, hash);
        if (it == NULL && pc->meta_fill != NULL) {
            it = pc->meta_fill;                   /* filled, not kept by the cache */
            bc_item_retain(cache, it);
        }
    }
    bc__proto_detail_get(pc->env, r->key, r->nkey, it != NULL);
    if (touch) {
        bc_stats_incr(pc->stats, cmd_touch);
        if (it != NULL) bc_stats_incr(pc->stats, touch_hits);
        else bc_stats_incr(pc->stats, touch_misses);
    } else {
        bc_stats_incr(pc->stats, cmd_get);
        if (it != NULL) bc_stats_incr(pc->stats, get_hits);
        else bc_stats_incr(pc->stats, get_misses);
    }
    if (it == NULL) {
        put_miss(pc, &pc->out, r->id, r->quiet, with_key, r->key, r->nkey);
        return;
    }
    unsigned char ext[4];
    bc_binary_put32(ext, bc_item_flags(it));
    uint32_t vlen = value ? bc_item_value_len(it) : 0;
    if (vlen <= BC_PROTO_COPY_MAX) {
        put_reply(pc, &pc->out, r->id, BC_BIN_OK, ext, 4, with_key ? r->key : NULL,
                  with_key ? r->nkey : 0, bc_item_value(it), vlen, it->cas);
        bc_item_release(cache, it);
        return;
    }
    /* A large value is sent from the item itself (proto_text.h). */
    uint16_t nkey = with_key ? r->nkey : 0;
    size_t head = BC_BIN_HEADER_LEN + 4 + nkey;
    char *p = bc_outq_reserve(&pc->out, head);
    if (p == NULL) {
        bc_item_release(cache, it);
        pc->oom = true;
        return;
    }
    bc_binary_response_header(p, r->id.opcode, BC_BIN_OK, 4, nkey, 4u + nkey + vlen, r->id.opaque,
                           it->cas);
    memcpy(p + BC_BIN_HEADER_LEN, ext, 4);
    if (nkey > 0) memcpy(p + BC_BIN_HEADER_LEN + 4, r->key, nkey);
    if (!bc_outq_commit(&pc->out, head) ||
        !bc_outq_add_item(&pc->out, cache, it, bc_item_value(it), vlen)) {
        pc->oom = true;
    }
}

static char
mode_letter(bc_store_mode_t mode)
{
    switch (mode) {
    case BC_STORE_ADD: return 'E';
    case BC_STORE_REPLACE: return 'R';
    case BC_STORE_APPEND: return 'A';
    case BC_STORE_PREPEND: return 'P';
    default: return 'S';
    }
}

/* A store for another owner: "ms" with the value collected (FWD_DATA). */
static void
fwd_store(bc_proto_conn_t *pc, const bin_req_t *r, const bc_proto_route_t *route,
          bc_store_mode_t mode, bc_store_mode_t reply_mode, uint32_t vlen, uint32_t flags,
          uint32_t exp)
{
    char k[META_KEY_MAX];
    bool b64;
    const char *bf;
    if (meta_key(r->key, r->nkey, k, &b64) == 0) {
        put_unforwardable(pc, r);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = vlen;
        if (vlen == 0) pc->state = BC_PROTO_LINE;
        return;
    }
    bf = b64 ? " b" : "";
    /* BEHAVIOR: a value larger than this node's item limit is not buffered
     * to be forwarded: E2BIG here, a set removing the owner's old value
     * first, as memcached does (proto_fwd.c fwd_too_large for text). */
    if ((size_t)vlen + 2 > bc_cache_max_item_size(pc->env->cache)) {
        bc_stats_incr(pc->stats, store_too_large);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = vlen;
        if (r->cmd != BC_BIN_SET) {
            put_error(pc, &pc->out, r->id, BC_BIN_E2BIG, NULL, 0);
            return;
        }
        bin_fwd_ctx_t *c = fwd_ctx(pc, r, BC_STORE_SET);
        if (c == NULL) return;
        c->too_large = true;
        size_t cap = META_KEY_MAX + 16;
        char *buf = malloc(cap);
        if (buf == NULL) {
            free(c);
            pc->oom = true;
            return;
        }
        int n = snprintf(buf, cap, "md %s%s q\r\nmn\r\n", k, bf);
        bc__proto_fwd_command_bin(pc, route, buf, (size_t)n, compose, c);
        return;
    }
    bin_fwd_ctx_t *c = fwd_ctx(pc, r, reply_mode);
    if (c == NULL) return;
    char line[META_KEY_MAX + 128];
    int n;
    char cas[32] = "";
    if (r->cas != 0) snprintf(cas, sizeof(cas), " C%" PRIu64, r->cas);
    if (mode == BC_STORE_APPEND || mode == BC_STORE_PREPEND) {
        n = snprintf(line, sizeof(line), "ms %s %" PRIu32 "%s M%c%s c\r\n", k, vlen, bf,
                     mode_letter(mode), cas);
    } else {
        n = snprintf(line, sizeof(line),
                     "ms %s %" PRIu32 "%s F%" PRIu32 " T%" PRId64 " M%c%s c\r\n", k, vlen, bf,
                     flags, meta_ttl(exp), mode_letter(mode), cas);
    }
    static const char tail[] = "\r\nmn\r\n";
    char *buf = malloc((size_t)n + vlen + sizeof(tail));
    if (buf == NULL) {
        free(c);
        pc->oom = true;
        return;
    }
    memcpy(buf, line, (size_t)n);
    bc__proto_fwd_collect_bin(pc, route, buf, (size_t)n, vlen, compose, c);
    if (!pc->oom && vlen == 0) bc__proto_bin_fwd_store_finish(pc);
}

void
bc__proto_bin_fwd_store_finish(bc_proto_conn_t *pc)
{
    static const char tail[] = "\r\nmn\r\n";
    size_t len;
    char *buf = bc__proto_fwd_collected(pc, &len);
    memcpy(buf + len, tail, sizeof(tail) - 1);
    bc__proto_fwd_collect_send(pc, len + sizeof(tail) - 1);
}

/* set add replace append prepend (and quiet forms) */
static void
bin_store(bc_proto_conn_t *pc, const bin_req_t *r)
{
    bc_cache_t *cache = pc->env->cache;
    bool concat = r->cmd == BC_BIN_APPEND || r->cmd == BC_BIN_PREPEND;
    uint32_t vlen = r->bodylen - r->nkey - r->extlen;
    uint32_t flags = concat ? 0 : bc_binary_get32(r->ext);
    uint32_t exp = concat ? 0 : bc_binary_get32(r->ext + 4);
    bc_store_mode_t mode, reply_mode;
    switch (r->cmd) {
    case BC_BIN_ADD: reply_mode = BC_STORE_ADD; break;
    case BC_BIN_REPLACE: reply_mode = BC_STORE_REPLACE; break;
    case BC_BIN_APPEND: reply_mode = BC_STORE_APPEND; break;
    case BC_BIN_PREPEND: reply_mode = BC_STORE_PREPEND; break;
    default: reply_mode = BC_STORE_SET; break;
    }
    /* memcached: set, add and replace with a CAS are a cas. */
    mode = !concat && r->cas != 0 ? BC_STORE_CAS : reply_mode;
    if (mode == BC_STORE_CAS) reply_mode = BC_STORE_CAS;
    uint32_t hash = bc_hash_key(r->key, r->nkey);
    bc_proto_route_t route;

    bc_proto_action_t a = bin_route(pc, r, hash, true, false, &route);
    if (a == BC_PROTO_REFUSE) {
        if (pc->ro_hold) return;               /* the packet waits, value and all */
        pc->state = vlen > 0 ? BC_PROTO_SWALLOW : BC_PROTO_LINE;
        pc->swallow = vlen;
        return;
    }
    if (a == BC_PROTO_FORWARD) {
        /* the meta mode: a cas is a set (or replace) with C */
        fwd_store(pc, r, &route, mode == BC_STORE_CAS ? BC_STORE_SET : mode, reply_mode, vlen,
                  flags, exp);
        return;
    }
    bc__proto_detail_set(pc->env, r->key, r->nkey);
    bc_status_t st;
    bc_item_t *it = NULL;
    if ((uint64_t)vlen + 2 <= BC_MC_VALUE_MAX_LEN) {
        it = bc_item_alloc(cache, r->key, r->nkey, hash, flags, bc_cache_exptime_abs(cache, exp),
                           vlen + 2, &st);
    } else {
        st = BC_ETOOLARGE;
    }
    if (it == NULL) {
        if (st == BC_ETOOLARGE) {
            bc_stats_incr(pc->stats, store_too_large);
            put_error(pc, &pc->out, r->id, BC_BIN_E2BIG, NULL, 0);
        } else {
            bc_stats_incr(pc->stats, store_no_memory);
            put_error(pc, &pc->out, r->id, BC_BIN_ENOMEM, NULL, 0);
        }
        /* memcached: a failed set must not leave the old value readable */
        if (r->cmd == BC_BIN_SET) (void)bc_cache_delete(cache, r->key, r->nkey, hash);
        pc->state = vlen > 0 ? BC_PROTO_SWALLOW : BC_PROTO_LINE;
        pc->swallow = vlen;
        return;
    }
    pc->state = BC_PROTO_DATA;
    pc->item = it;
    pc->hash = hash;
    pc->dst = bc_item_value(it);
    pc->need = vlen;
    pc->bin.opcode = r->id.opcode;
    pc->bin.opaque = r->id.opaque;
    pc->bin.cas = r->cas;
    pc->bin.mode = mode;
    if (vlen == 0) bc__proto_bin_store_finish(pc);
}

void
bc__proto_bin_store_finish(bc_proto_conn_t *pc)
{
    bc_cache_t *cache = pc->env->cache;
    bc_item_t *it = pc->item;
    bin_id_t id = {.opcode = pc->bin.opcode, .opaque = pc->bin.opaque};
    bool quiet;
    (void)bc_binary_unquiet(id.opcode, &quiet);
    char *v = bc_item_value(it);

    pc->item = NULL;
    pc->state = BC_PROTO_LINE;
    v[bc_item_nbytes(it) - 2] = '\r';
    v[bc_item_nbytes(it) - 1] = '\n';
    /* migration fencing, as cmd_store_finish (proto_text.c) */
    if (pc->env->cluster != NULL) {
        bc_proto_route_t r;
        if (bc__proto_route(pc, pc->hash, true, &r) != BC_PROTO_SERVE) {
            /* The pause began while the value was arriving: the complete
             * item waits with it (proto_text.c proto_pause_retry stores it). */
            if (bc__proto_hold_for_pause(pc, &r)) {
                pc->item = it;
                pc->state = BC_PROTO_DATA;
                pc->need = 0;
                return;
            }
            bc_item_release(cache, it);
            put_refusal(pc, id, &r);
            return;
        }
    }
    bc_stats_incr(pc->stats, cmd_set);
    bc_store_mode_t mode = pc->bin.mode;
    uint64_t cas = 0;
    bc_status_t st = bc_cache_store_meta(cache, it, mode, pc->bin.cas, false, &cas);
    if (mode == BC_STORE_CAS) {
        if (st == BC_OK) bc_stats_incr(pc->stats, cas_hits);
        else if (st == BC_EEXISTS) bc_stats_incr(pc->stats, cas_badval);
        else if (st == BC_ENOTFOUND) bc_stats_incr(pc->stats, cas_misses);
    }
    switch (st) {
    case BC_OK: put_done(pc, &pc->out, id, quiet, cas); break;
    case BC_EEXISTS: put_error(pc, &pc->out, id, BC_BIN_KEY_EEXISTS, NULL, 0); break;
    case BC_ENOTFOUND: put_error(pc, &pc->out, id, BC_BIN_KEY_ENOENT, NULL, 0); break;
    default:
        if (st == BC_ENOMEM) bc_stats_incr(pc->stats, store_no_memory);
        if (st == BC_ETOOLARGE) bc_stats_incr(pc->stats, store_too_large);
        put_error(pc, &pc->out, id,
                  mode == BC_STORE_ADD       ? BC_BIN_KEY_EEXISTS
                  : mode == BC_STORE_REPLACE ? BC_BIN_KEY_ENOENT
                                             : BC_BIN_NOT_STORED,
                  NULL, 0);
        break;
    }
}

static void
bin_delete(bc_proto_conn_t *pc, const bin_req_t *r)
{
    uint32_t hash = bc_hash_key(r->key, r->nkey);
    bc_proto_route_t route;
    bc_proto_action_t a = bin_route(pc, r, hash, true, false, &route);
    if (a == BC_PROTO_REFUSE) return;
    if (a == BC_PROTO_FORWARD) {
        char k[META_KEY_MAX], cas[32] = "";
        bool b64;
        if (meta_key(r->key, r->nkey, k, &b64) == 0) {
            put_unforwardable(pc, r);
            return;
        }
        if (r->cas != 0) snprintf(cas, sizeof(cas), " C%" PRIu64, r->cas);
        fwd_meta(pc, r, &route, "md %s%s%s\r\n", k, b64 ? " b" : "", cas);
        return;
    }
    bc__proto_detail_delete(pc->env, r->key, r->nkey);
    bc_status_t st = bc_cache_mdelete(pc->env->cache, r->key, r->nkey, hash, r->cas != 0, r->cas,
                                      false, false, 0);
    switch (st) {
    case BC_OK:
        bc_stats_incr(pc->stats, delete_hits);
        put_done(pc, &pc->out, r->id, r->quiet, 0);
        break;
    case BC_EEXISTS:
        put_error(pc, &pc->out, r->id, BC_BIN_KEY_EEXISTS, NULL, 0);
        break;
    default:
        bc_stats_incr(pc->stats, delete_misses);
        put_error(pc, &pc->out, r->id, BC_BIN_KEY_ENOENT, NULL, 0);
        break;
    }
}

static void
bin_arith(bc_proto_conn_t *pc, const bin_req_t *r)
{
    bool incr = r->cmd == BC_BIN_INCREMENT;
    uint64_t delta = bc_binary_get64(r->ext), initial = bc_binary_get64(r->ext + 8);
    uint32_t exp = bc_binary_get32(r->ext + 16);
    uint32_t hash = bc_hash_key(r->key, r->nkey);
    bc_proto_route_t route;

    bc_proto_action_t a = bin_route(pc, r, hash, true, false, &route);
    if (a == BC_PROTO_REFUSE) return;
    if (a == BC_PROTO_FORWARD) {
        char k[META_KEY_MAX], cas[32] = "", viv[64] = "";
        bool b64;
        if (meta_key(r->key, r->nkey, k, &b64) == 0) {
            put_unforwardable(pc, r);
            return;
        }
        if (r->cas != 0) snprintf(cas, sizeof(cas), " C%" PRIu64, r->cas);
        if (exp != 0xffffffffu) {
            snprintf(viv, sizeof(viv), " N%" PRId64 " J%" PRIu64, meta_ttl(exp), initial);
        }
        fwd_meta(pc, r, &route, "ma %s%s v c D%" PRIu64 " M%c%s%s\r\n", k, b64 ? " b" : "",
                 delta, incr ? 'I' : 'D', viv, cas);
        return;
    }
    /* memcached: a miss creates the key with `initial` unless the expiry
     * is 0xffffffff; a CAS given must match. */
    bc_cache_marith_t m = {
        .incr = incr,
        .delta = delta,
        .cas_in = r->cas,
        .vivify = exp != 0xffffffffu,
        .initial = initial,
        .set_exptime_created = true,
        .exptime_created = bc_cache_exptime_abs(pc->env->cache, exp),
    };
    bc_status_t st = bc_cache_marith(pc->env->cache, r->key, r->nkey, hash, &m);
    if (st == BC_OK && !m.created) {
        if (incr) bc_stats_incr(pc->stats, incr_hits);
        else bc_stats_incr(pc->stats, decr_hits);
    } else if (st == BC_ENOTFOUND || (st == BC_OK && m.created)) {
        if (incr) bc_stats_incr(pc->stats, incr_misses);
        else bc_stats_incr(pc->stats, decr_misses);
    }
    switch (st) {
    case BC_OK:
        if (!r->quiet) {
            unsigned char body[8];
            bc_binary_put64(body, m.value);
            put_reply(pc, &pc->out, r->id, BC_BIN_OK, NULL, 0, NULL, 0, (const char *)body, 8,
                      m.cas);
        }
        break;
    case BC_ENOTFOUND: put_error(pc, &pc->out, r->id, BC_BIN_KEY_ENOENT, NULL, 0); break;
    case BC_EEXISTS: put_error(pc, &pc->out, r->id, BC_BIN_KEY_EEXISTS, NULL, 0); break;
    case BC_ENONNUMERIC: put_error(pc, &pc->out, r->id, BC_BIN_DELTA_BADVAL, NULL, 0); break;
    default: put_error(pc, &pc->out, r->id, BC_BIN_ENOMEM, NULL, 0); break;
    }
}

/* flush, with an optional delay; in a cluster as text's flush_all. */
static void
bin_flush(bc_proto_conn_t *pc, const bin_req_t *r)
{
    bc_cache_t *cache = pc->env->cache;
    bc_node_cluster_t *cl = pc->env->cluster;
    uint32_t delay = r->extlen == 4 ? bc_binary_get32(r->ext) : 0;
    bool here = cl == NULL || bc_node_cluster_is_primary(cl) || pc->fwd == NULL || pc->peer;
    if (here) bc_cache_flush(cache, delay > 0 ? bc_cache_exptime_abs(cache, delay) : 0);
    bc_stats_incr(pc->stats, cmd_flush);
    if (cl != NULL && pc->fwd != NULL && !pc->peer) {
        char line[48];
        int n = delay > 0 ? snprintf(line, sizeof(line), "flush_all %" PRId64, meta_ttl(delay))
                          : snprintf(line, sizeof(line), "flush_all");
        bc_mc_request_t req;
        if (bc_mc_request_parse(line, (size_t)n, &req) != BC_OK) return;
        bin_fwd_ctx_t *c = fwd_ctx(pc, r, BC_STORE_SET);
        if (c == NULL) return;
        bc__proto_fwd_flush_all(pc, line, (size_t)n, &req, here, compose, c);
        return;
    }
    put_done(pc, &pc->out, r->id, r->quiet, 0);
}

/* One stat packet (memcached's append_bin_stats); both lengths 0: the end. */
static void
put_stat(bc_proto_conn_t *pc, bin_id_t id, const char *k, size_t nk, const char *v, size_t nv)
{
    bin_id_t sid = {.opcode = BC_BIN_STAT, .opaque = id.opaque};
    put_reply(pc, &pc->out, sid, BC_BIN_OK, NULL, 0, k, (uint16_t)nk, v, (uint32_t)nv, 0);
}

/* The text protocol's answer to line (a stats command), flattened into
 * a malloc'd buffer (*n bytes); NULL when out of memory. */
static char *
text_stats(bc_proto_conn_t *pc, const char *line, size_t *n, bool dump)
{
    bc_mc_request_t req;
    bc_outq_t saved = pc->out;
    bc_outq_init(&pc->out);
    if (dump) {
        bc__proto_detail_dump(pc);
    } else if (bc_mc_request_parse(line, strlen(line), &req) == BC_OK) {
        bc__proto_stats(pc, &req);
    }
    bc_outq_t text = pc->out;
    pc->out = saved;
    size_t total = bc_outq_pending(&text), got = 0;
    char *flat = malloc(total + 1);
    if (flat != NULL) {
        for (;;) {
            struct iovec iov[64];
            int cnt = bc_outq_iov(&text, iov, 64);
            if (cnt <= 0) break;
            size_t chunk = 0;
            for (int i = 0; i < cnt && got + iov[i].iov_len <= total; i++) {
                memcpy(flat + got, iov[i].iov_base, iov[i].iov_len);
                got += iov[i].iov_len;
                chunk += iov[i].iov_len;
            }
            bc_outq_consume(&text, pc->env->cache, chunk);
            if (chunk == 0) break;
        }
    }
    bc_outq_free(&text, pc->env->cache);
    *n = got;
    return flat;
}

static bool
key_is(const bin_req_t *r, const char *name)
{
    size_t n = strlen(name);
    return r->nkey == n && memcmp(r->key, name, n) == 0;
}

static bool
key_starts(const bin_req_t *r, const char *name)
{
    size_t n = strlen(name);
    return r->nkey >= n && memcmp(r->key, name, n) == 0;
}

/* stat [key]: memcached's process_bin_stat. */
static void
bin_stat(bc_proto_conn_t *pc, const bin_req_t *r)
{
    const char *line = NULL;
    bool dump = false, empty = false;

    if (r->nkey == 0) {
        line = "stats";
    } else if (key_starts(r, "reset")) {
        line = "stats reset";
        empty = true;
    } else if (key_starts(r, "settings")) {
        line = "stats settings";
    } else if (key_starts(r, "detail")) {
        const char *rest = r->key + 6;
        size_t nrest = r->nkey - 6u;
        if (nrest >= 5 && memcmp(rest, " dump", 5) == 0) {
            dump = true;
        } else if (nrest >= 3 && memcmp(rest, " on", 3) == 0) {
            atomic_store(&pc->env->detail_on, true);
            put_stat(pc, r->id, NULL, 0, NULL, 0);
            return;
        } else if (nrest >= 4 && memcmp(rest, " off", 4) == 0) {
            atomic_store(&pc->env->detail_on, false);
            put_stat(pc, r->id, NULL, 0, NULL, 0);
            return;
        } else {
            put_error(pc, &pc->out, r->id, BC_BIN_KEY_ENOENT, NULL, 0);
            return;
        }
    } else if (key_is(r, "items")) {
        line = "stats items";
    } else if (key_is(r, "slabs")) {
        line = "stats slabs";
    } else if (key_is(r, "sizes")) {
        line = "stats sizes";
    } else if (key_is(r, "sizes_enable")) {
        line = "stats sizes_enable";
    } else if (key_is(r, "sizes_disable")) {
        line = "stats sizes_disable";
    } else {
        put_error(pc, &pc->out, r->id, BC_BIN_KEY_ENOENT, NULL, 0);
        return;
    }

    size_t n;
    char *text = text_stats(pc, line, &n, dump);
    if (text == NULL) {
        pc->oom = true;
        return;
    }
    if (dump) {
        put_stat(pc, r->id, "detailed", 8, text, n);
    } else if (!empty) {
        /* "STAT name value\r\n" lines, up to "END" */
        size_t pos = 0;
        while (pos < n) {
            const char *l = text + pos;
            const char *nl = memchr(l, '\n', n - pos);
            if (nl == NULL) break;
            size_t ln = (size_t)(nl - l);
            pos += ln + 1;
            if (ln > 0 && l[ln - 1] == '\r') ln--;
            if (ln < 5 || memcmp(l, "STAT ", 5) != 0) continue;
            const char *name = l + 5, *sp = memchr(name, ' ', ln - 5);
            size_t nname = sp != NULL ? (size_t)(sp - name) : ln - 5;
            const char *val = sp != NULL ? sp + 1 : name + nname;
            size_t nval = sp != NULL ? ln - 5 - nname - 1 : 0;
            put_stat(pc, r->id, name, nname, val, nval);
        }
    }
    free(text);
    put_stat(pc, r->id, NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* the packet                                                               */
/* ------------------------------------------------------------------------ */

/* memcached's protocol error: "Invalid arguments", then the connection
 * closes. */
static bc_status_t
protocol_error(bc_proto_conn_t *pc, bin_id_t id)
{
    bc_stats_incr(pc->stats, protocol_errors);
    put_error(pc, &pc->out, id, BC_BIN_EINVAL, NULL, 0);
    log_debug("connection %d: binary protocol error (opcode 0x%02x), closing", pc->id,
              id.opcode);
    return BC_ECLOSED;
}

/* An error that swallows n more bytes of input (memcached's
 * write_bin_error(..., swallow)). */
static void
error_swallow(bc_proto_conn_t *pc, bin_id_t id, uint16_t status, uint64_t n)
{
    bc_stats_incr(pc->stats, protocol_errors);
    put_error(pc, &pc->out, id, status, NULL, 0);
    if (n > 0) {
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = n;
    }
}

bc_status_t
bc__proto_bin_packet(bc_proto_conn_t *pc, const char *buf, size_t len, size_t *used)
{
    bc_binary_header_t h;
    *used = 0;
    if (len < BC_BIN_HEADER_LEN) return BC_OK;
    bc_binary_header_decode(buf, &h);
    bin_id_t id = {.opcode = h.opcode, .opaque = h.opaque};
    if (h.magic != BC_BIN_REQ_MAGIC) {
        log_debug("connection %d: bad binary magic 0x%02x, closing", pc->id, h.magic);
        return BC_ECLOSED;
    }
    /* Decided on the header alone (memcached waits for extras and key
     * first; the answer is the same once they come). */
    if (h.keylen > h.bodylen || (uint32_t)h.keylen + h.extlen > h.bodylen) {
        bc_stats_incr(pc->stats, protocol_errors);
        put_error(pc, &pc->out, id, BC_BIN_UNKNOWN_COMMAND, NULL, 0);
        return BC_ECLOSED;
    }
    if (h.keylen > BC_MC_KEY_MAX_LEN) return protocol_error(pc, id);
    size_t need = BC_BIN_HEADER_LEN + h.extlen + h.keylen;
    if (len < need) return BC_OK;
    *used = need;

    bin_req_t r = {
        .id = id,
        .extlen = h.extlen,
        .nkey = h.keylen,
        .bodylen = h.bodylen,
        .cas = h.cas,
        .ext = (const unsigned char *)buf + BC_BIN_HEADER_LEN,
        .key = buf + BC_BIN_HEADER_LEN + h.extlen,
        .pkt = buf,
        .npkt = need,
    };
    r.cmd = bc_binary_unquiet(h.opcode, &r.quiet);
    uint8_t ext = h.extlen;
    uint16_t nkey = h.keylen;
    uint32_t body = h.bodylen;

    switch (r.cmd) {
    case BC_BIN_VERSION:
        if (ext != 0 || nkey != 0 || body != 0) return protocol_error(pc, id);
        put_reply(pc, &pc->out, id, BC_BIN_OK, NULL, 0, NULL, 0, BC_MC_PROTOCOL_VERSION,
                  sizeof(BC_MC_PROTOCOL_VERSION) - 1, 0);
        break;
    case BC_BIN_FLUSH:
        if (nkey != 0 || body != ext || (ext != 0 && ext != 4)) return protocol_error(pc, id);
        bin_flush(pc, &r);
        break;
    case BC_BIN_NOOP:
        if (ext != 0 || nkey != 0 || body != 0) return protocol_error(pc, id);
        put_reply(pc, &pc->out, id, BC_BIN_OK, NULL, 0, NULL, 0, NULL, 0, 0);
        break;
    case BC_BIN_SET:
    case BC_BIN_ADD:
    case BC_BIN_REPLACE:
        if (ext != 8 || nkey == 0 || body < (uint32_t)nkey + 8) return protocol_error(pc, id);
        bin_store(pc, &r);
        break;
    case BC_BIN_GET:
    case BC_BIN_GETK:
        if (ext != 0 || body != nkey || nkey == 0) return protocol_error(pc, id);
        bin_get(pc, &r);
        break;
    case BC_BIN_DELETE:
        if (nkey == 0 || ext != 0 || body != nkey) return protocol_error(pc, id);
        bin_delete(pc, &r);
        break;
    case BC_BIN_INCREMENT:
    case BC_BIN_DECREMENT:
        if (nkey == 0 || ext != 20 || body != (uint32_t)nkey + 20) return protocol_error(pc, id);
        bin_arith(pc, &r);
        break;
    case BC_BIN_APPEND:
    case BC_BIN_PREPEND:
        if (nkey == 0 || ext != 0) return protocol_error(pc, id);
        bin_store(pc, &r);
        break;
    case BC_BIN_STAT:
        if (ext != 0) return protocol_error(pc, id);
        bin_stat(pc, &r);
        break;
    case BC_BIN_QUIT:
        if (nkey != 0 || ext != 0 || body != 0) return protocol_error(pc, id);
        put_done(pc, &pc->out, id, r.quiet, 0);
        return BC_ECLOSED;
    case BC_BIN_SASL_LIST_MECHS:
        if (ext != 0 || nkey != 0 || body != 0) return protocol_error(pc, id);
        error_swallow(pc, id, BC_BIN_UNKNOWN_COMMAND, 0);
        break;
    case BC_BIN_SASL_AUTH:
    case BC_BIN_SASL_STEP:
        /* no SASL: memcached answers unknown and swallows the value */
        if (ext != 0 || nkey == 0) return protocol_error(pc, id);
        error_swallow(pc, id, BC_BIN_UNKNOWN_COMMAND, body - nkey);
        break;
    case BC_BIN_TOUCH:
    case BC_BIN_GAT:
    case BC_BIN_GATK:
        if (ext != 4 || nkey == 0) return protocol_error(pc, id);
        bin_get(pc, &r);
        break;
    default:
        /* memcached swallows bodylen bytes AFTER extras and key */
        error_swallow(pc, id, BC_BIN_UNKNOWN_COMMAND, body);
        break;
    }
    /* A write held at its routing (bin_route) is presented again, whole;
     * one held with its complete value (state DATA) was consumed. */
    if (pc->ro_hold && pc->state == BC_PROTO_LINE) *used = 0;
    return pc->oom ? BC_ENOMEM : BC_OK;
}
