/*
 * fuzz_wire.c -- libFuzzer target for the cluster's words on the data port
 * (common/bc_wire.c): refusals, forwarding failures, the peer and the
 * replication handshakes, the challenge, the proof and the refusals of
 * peer authentication.
 *
 * The input is split at '\n' into lines; every line goes through every
 * parser.  Invariants: what a parser returns points inside the line; a
 * refusal it accepts formats back to exactly the bytes it read (nothing
 * reaches a client's retry loop that a node could not have sent); an
 * accepted forwarding failure is one of the table's texts; an accepted
 * handshake's fields are ones a formatter writes, and the formatted line
 * parses back to the same fields; an accepted challenge formats back to
 * exactly its line.  Sanitizers catch out-of-bounds reads;
 * __builtin_trap() marks a broken invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bc_wire.h"
#include "fuzz_target.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static int
inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && p + n <= base + len;
}

static void
check_refusal(const char *text, size_t n)
{
    bc_wire_refusal_t r;
    if (bc_wire_refusal_parse(text, n, &r) == BC_WIRE_REFUSAL_NONE) {
        CHECK(r.kind == BC_WIRE_REFUSAL_NONE);
        return;
    }
    char line[BC_WIRE_REFUSAL_MAX];
    size_t m = bc_wire_refusal_format(&r, line, sizeof(line));
    CHECK(m == 13 + n + 2 && memcmp(line, "SERVER_ERROR ", 13) == 0);
    CHECK(memcmp(line + 13, text, n) == 0 && memcmp(line + 13 + n, "\r\n", 2) == 0);
}

static void
check_fwd(const char *text, size_t n)
{
    bc_wire_fwd_failure_t f = bc_wire_fwd_failure_parse(text, n);
    if (f == BC_WIRE_FWD_NONE) return;
    const char *want = bc_wire_fwd_failure_text(f);
    CHECK(want != NULL && strlen(want) == n && memcmp(want, text, n) == 0);
}

static void
check_peer(const char *line, size_t len)
{
    bc_wire_peer_t h, again;
    bc_status_t st = bc_wire_peer_parse(line, len, &h);
    CHECK(st == BC_OK || st == BC_EINVAL || st == BC_ENOTFOUND);
    if (st != BC_OK) return;
    CHECK(bc_wire_name_valid(h.name, strlen(h.name)));
    CHECK(h.nonce[0] == '\0' || bc_wire_hex_valid(h.nonce, strlen(h.nonce), BC_WIRE_NONCE_LEN));
    char out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = bc_wire_peer_format(&h, out, sizeof(out));
    CHECK(m > 0);
    CHECK(bc_wire_peer_parse(out, m, &again) == BC_OK);
    CHECK(strcmp(again.name, h.name) == 0 && strcmp(again.nonce, h.nonce) == 0);
}

/* A challenge the parser accepts formats back to exactly its line. */
static void
check_challenge(const char *line, size_t len)
{
    bc_wire_challenge_t c;
    bc_status_t st = bc_wire_challenge_parse(line, len, &c);
    CHECK(st == BC_OK || st == BC_EINVAL || st == BC_ENOTFOUND);
    if (st != BC_OK) return;
    char out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = bc_wire_challenge_format(&c, out, sizeof(out));
    size_t body = len;
    if (body > 0 && line[body - 1] == '\n') body--;
    if (body > 0 && line[body - 1] == '\r') body--;
    CHECK(m == body + 2 && memcmp(out, line, body) == 0);
}

static void
check_auth(const char *line, size_t len)
{
    const char *proof = NULL;
    bc_status_t st = bc_wire_auth_parse(line, len, &proof);
    CHECK(st == BC_OK || st == BC_EINVAL || st == BC_ENOTFOUND);
    if (st != BC_OK) return;
    CHECK(inside(proof, BC_WIRE_PROOF_LEN, line, len));
    CHECK(bc_wire_hex_valid(proof, BC_WIRE_PROOF_LEN, BC_WIRE_PROOF_LEN));
    char copy[BC_WIRE_PROOF_LEN + 1], out[BC_WIRE_HANDSHAKE_MAX];
    memcpy(copy, proof, BC_WIRE_PROOF_LEN);
    copy[BC_WIRE_PROOF_LEN] = '\0';
    CHECK(bc_wire_auth_format(copy, out, sizeof(out)) > 0);
}

/* An accepted refusal of a handshake is one of the table's texts. */
static void
check_peer_auth(const char *text, size_t n)
{
    bc_wire_peer_auth_failure_t f = bc_wire_peer_auth_parse(text, n);
    if (f == BC_WIRE_PEER_AUTH_NONE) return;
    const char *line = bc_wire_peer_auth_line(f);
    CHECK(line != NULL && strlen(line) == 13 + n + 2 && memcmp(line + 13, text, n) == 0);
}

static void
check_replicate(const char *line, size_t len)
{
    const char *args = NULL;
    size_t n = 0;
    bc_status_t st = bc_wire_replicate_match(line, len, &args, &n);
    CHECK(st == BC_OK || st == BC_ENOTFOUND);
    if (st != BC_OK) return;
    CHECK(inside(args, n, line, len));
    bc_wire_replicate_t h, again;
    if (bc_wire_replicate_parse(args, n, &h) != BC_OK) return;
    char out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = bc_wire_replicate_format(&h, out, sizeof(out));
    CHECK(m > 0);
    const char *a2;
    size_t n2;
    CHECK(bc_wire_replicate_match(out, m, &a2, &n2) == BC_OK);
    CHECK(bc_wire_replicate_parse(a2, n2, &again) == BC_OK);
    CHECK(again.gid == h.gid && again.offset == h.offset);
    CHECK(strcmp(again.replid, h.replid) == 0 && strcmp(again.name, h.name) == 0);
    CHECK(strcmp(again.nonce, h.nonce) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        /* a reply line's text, as a client gets it */
        const char *text = p;
        size_t ntext = len;
        if (ntext >= 13 && memcmp(text, "SERVER_ERROR ", 13) == 0) {
            text += 13;
            ntext -= 13;
        }
        if (ntext > 0 && text[ntext - 1] == '\r') ntext--;
        check_refusal(text, ntext);
        check_fwd(text, ntext);
        check_peer(p, len);
        check_replicate(p, len);
        check_challenge(p, len);
        check_auth(p, len);
        if (len >= 13 && memcmp(p, "CLIENT_ERROR ", 13) == 0) {
            size_t nt = len - 13;
            if (nt > 0 && p[len - 1] == '\r') nt--;
            check_peer_auth(p + 13, nt);
        }
        p += len + (nl ? 1 : 0);
    }
    return 0;
}
