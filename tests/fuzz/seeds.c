/*
 * seeds.c -- writes the seed inputs of the fuzz targets: the files
 * tests/fuzz/corpus/<target>/gen-* are this program's output.
 *
 *     gen_fuzz_seeds DIR            write every seed under DIR (tests/fuzz/corpus)
 *     gen_fuzz_seeds --check DIR    exit 1 unless the gen-* files under DIR are
 *                               exactly what this program writes (ctest
 *                               lint.fuzz_seeds)
 *
 * A fuzzer mutates what it starts from, so each target gets one input of
 * every shape it should know: every command and frame type, data blocks,
 * pipelines, and the malformed variants a parser must refuse.  Frames and
 * cluster words are written by the product's own encoders (bc_frame_put_*,
 * bc_wire_*), so they stay valid when the formats change; the check above
 * says when to run this again.  The other files in the corpora (hash-named
 * ones) are inputs the fuzzers found and kept.
 *
 * Each target reads its input its own way: fuzz_frame and fuzz_repl take
 * a first byte (even: a raw stream; odd: payloads, each after a length
 * byte, wrapped in valid headers -- fuzz_frames.h), fuzz_proto_text a
 * first byte that seeds its read sizes, fuzz_mcproto and fuzz_wire lines,
 * fuzz_auth header lines then a NUL and a secret file, fuzz_binary a first
 * byte that seeds its read sizes then binary packets (it puts the magic
 * byte that makes the connection binary in front when they lack it).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bc_frame.h"
#include "bc_wire.h"

static const char *root;
static bool checking;
static int problems;

/* Writes (or, checking, compares) root/target/gen-name. */
static void
emit(const char *target, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (!checking && mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_fuzz_seeds: cannot create %s: %s\n", path, strerror(errno));
        exit(2);
    }
    snprintf(path, sizeof(path), "%s/%s/gen-%s", root, target, name);
    if (checking) {
        FILE *f = fopen(path, "rb");
        char *have = malloc(len + 1);
        size_t n = f != NULL && have != NULL ? fread(have, 1, len + 1, f) : 0;
        if (f == NULL || n != len || memcmp(have, data, len) != 0) {
            fprintf(stderr, "gen_fuzz_seeds: %s is %s: run gen_fuzz_seeds %s\n", path,
                    f == NULL ? "missing" : "not what this program writes", root);
            problems++;
        }
        if (f != NULL) fclose(f);
        free(have);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_fuzz_seeds: cannot write %s\n", path);
        exit(2);
    }
}

static void
emit_text(const char *target, const char *name, const char *text)
{
    emit(target, name, text, strlen(text));
}

/* proto_text inputs: a first byte (the read sizes), then the bytes. */
static void
emit_session(const char *name, char first, const char *text)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (buf == NULL) exit(2);
    buf[0] = first;
    memcpy(buf + 1, text, n);
    emit("proto_text", name, buf, n + 1);
    free(buf);
}

/* ---- frames ---- */

static void
ok(bc_status_t st)
{
    if (st != BC_OK) {
        fprintf(stderr, "gen_fuzz_seeds: encoding a frame failed: %s\n", bc_status_str(st));
        exit(2);
    }
}

/* A frame input: mode byte 0 (raw) then the stream. */
static void
emit_raw(const char *target, const char *name, const bc_frame_buf_t *b)
{
    char *buf = malloc(b->len + 1);
    if (buf == NULL) exit(2);
    buf[0] = 0;
    memcpy(buf + 1, b->data, b->len);
    emit(target, name, buf, b->len + 1);
    free(buf);
}

/* The same stream as payloads (mode byte 1, each payload after its length
 * byte): the fuzzer then changes fields rather than checksums.  Frames
 * whose payload is over 255 bytes are left out. */
static void
emit_payloads(const char *target, const char *name, const bc_frame_buf_t *b)
{
    char *buf = malloc(b->len + 1);
    size_t n = 0, pos = 0;
    if (buf == NULL) exit(2);
    buf[n++] = 1;
    while (pos + BC_FRAME_HEADER_LEN <= b->len) {
        const unsigned char *h = (const unsigned char *)b->data + pos;
        size_t plen = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        if (plen < 256) {
            buf[n++] = (char)plen;
            memcpy(buf + n, b->data + pos + BC_FRAME_HEADER_LEN, plen);
            n += plen;
        }
        pos += BC_FRAME_HEADER_LEN + plen;
    }
    emit(target, name, buf, n);
    free(buf);
}

/* Hand-made payloads (msgpack) for what the encoders never write. */
typedef struct payload {
    const char *p;
    size_t n;
} payload_t;
#define PAYLOAD(lit) {(lit), sizeof(lit) - 1}

/* Each payload as its own input: a stream stops at its first bad frame. */
static void
emit_payload_list(const char *name, const payload_t *pl, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char buf[300], file[64];
        buf[0] = 1;
        buf[1] = (char)pl[i].n;
        memcpy(buf + 2, pl[i].p, pl[i].n);
        snprintf(file, sizeof(file), "%s-%zu", name, i + 1);
        emit("frame", file, buf, pl[i].n + 2);
    }
}

static void
frame_seeds(void)
{
    static const char bin_key[] = "k\0\r\n\xff";
    static const char bin_value[] = "\0\0\r\nEND\r\n\x80";
    char big[2000];
    memset(big, 'v', sizeof(big));
    bc_frame_buf_t b;

    /* A full export: HELLO, items (plain, empty, binary, with a TTL), END. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_hello(&b, 3, 7, 64));
    ok(bc_frame_put_item(&b, "user:1", 6, "hello", 5, 5, 0, 1));
    ok(bc_frame_put_item(&b, "empty", 5, "", 0, 0, 0, 2));
    ok(bc_frame_put_item(&b, bin_key, sizeof(bin_key) - 1, bin_value, sizeof(bin_value) - 1,
                         UINT32_MAX, 60, UINT64_MAX));
    ok(bc_frame_put_end(&b, 3, 6 + 5 + 5 + sizeof(bin_key) - 1 + sizeof(bin_value) - 1));
    emit_raw("frame", "export-full", &b);
    emit_payloads("frame", "export-full-payloads", &b);
    size_t whole = b.len;

    /* The same stream cut inside its last item, and with a flipped bit. */
    b.len = whole - 12;
    emit_raw("frame", "bad-truncated", &b);
    b.len = whole;
    b.data[40] ^= 0x04;
    emit_raw("frame", "bad-checksum", &b);
    bc_frame_buf_free(&b);

    /* A delta export: ITEM is the key's value now, DEL that it is gone. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_hello_delta(&b, 3, 8, 64));
    ok(bc_frame_put_item(&b, "user:1", 6, "changed", 7, 0, 0, 9));
    ok(bc_frame_put_del(&b, "user:2", 6));
    ok(bc_frame_put_end(&b, 2, 6 + 7 + 6));
    emit_raw("frame", "export-delta", &b);
    emit_payloads("frame", "export-delta-payloads", &b);
    bc_frame_buf_free(&b);

    /* A value larger than one read. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_hello(&b, 0, 1, 1));
    ok(bc_frame_put_item(&b, "big", 3, big, sizeof(big), 0, 0, 3));
    ok(bc_frame_put_end(&b, 1, 3 + sizeof(big)));
    emit_raw("frame", "export-large-item", &b);
    bc_frame_buf_free(&b);

    /* An item in parts (HEAD PART+), and parts that do not add up. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_hello(&b, 0, 1, 1));
    ok(bc_frame_put_head(&b, "big", 3, sizeof(big), 7, 60, 3, 0));
    ok(bc_frame_put_part(&b, big, 1500));
    ok(bc_frame_put_part(&b, big, sizeof(big) - 1500));
    ok(bc_frame_put_item(&b, "a", 1, "1", 1, 0, 0, 1));
    ok(bc_frame_put_end(&b, 2, 3 + sizeof(big) + 2));
    emit_raw("frame", "export-item-in-parts", &b);
    emit_payloads("frame", "export-item-in-parts-payloads", &b);
    b.len = 0;
    ok(bc_frame_put_hello(&b, 0, 1, 1));
    ok(bc_frame_put_head(&b, "big", 3, 10, 0, 0, 3, 0));
    ok(bc_frame_put_part(&b, big, 11));
    emit_raw("frame", "bad-part-too-long", &b);
    bc_frame_buf_free(&b);

    /* Out of order: END counts that do not match, a frame after END, two
     * HELLOs, an ITEM before HELLO. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_hello(&b, 1, 2, 16));
    ok(bc_frame_put_item(&b, "a", 1, "1", 1, 0, 0, 1));
    ok(bc_frame_put_end(&b, 9, 9));
    emit_raw("frame", "bad-end-counts", &b);
    b.len = 0;
    ok(bc_frame_put_hello(&b, 1, 2, 16));
    ok(bc_frame_put_end(&b, 0, 0));
    ok(bc_frame_put_item(&b, "a", 1, "1", 1, 0, 0, 1));
    emit_raw("frame", "bad-after-end", &b);
    b.len = 0;
    ok(bc_frame_put_hello(&b, 1, 2, 16));
    ok(bc_frame_put_hello(&b, 1, 2, 16));
    emit_raw("frame", "bad-two-hellos", &b);
    b.len = 0;
    ok(bc_frame_put_item(&b, "a", 1, "1", 1, 0, 0, 1));
    emit_raw("frame", "bad-no-hello", &b);
    bc_frame_buf_free(&b);

    /* Headers: a length over any limit, an empty frame. */
    static const char huge[] = "\0\xff\xff\xff\xff\0\0\0\0";
    static const char empty[] = "\0\0\0\0\0\0\0\0\0";
    emit("frame", "bad-huge-length", huge, sizeof(huge) - 1);
    emit("frame", "bad-empty-frame", empty, sizeof(empty) - 1);

    /* Payloads the encoders never write: another version, str instead of
     * bin, too few fields, an unknown type, stray bytes, a map. */
    static const payload_t pl[] = {
        PAYLOAD("\x96\x00\xa5" "bcmig" "\x02\x03\x07\x40"),        /* HELLO version 2 */
        PAYLOAD("\x96\x01\xa1k\xa1v\x00\x00\x01"),                 /* ITEM, str key/value */
        PAYLOAD("\x93\x01\xa1k\xa1v"),                             /* ITEM with 3 fields */
        PAYLOAD("\x91\x63"),                                       /* type 99 */
        PAYLOAD("\x93\x02\x00\x00\xc0"),                           /* END, then a nil */
        PAYLOAD("\x81\x00\x00"),                                   /* a map */
        PAYLOAD("\x96\x00\xa5" "bcmig" "\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x07\x40"),
    };
    emit_payload_list("bad-payload", pl, sizeof(pl) / sizeof(pl[0]));

    /* Every replication frame: a snapshot, then the live stream. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_rhello(&b, true, "0123456789abcdef0123456789abcdef01234567", 0));
    ok(bc_frame_put_item(&b, "user:1", 6, "hello", 5, 5, 0, 1));
    ok(bc_frame_put_end(&b, 1, 11));
    ok(bc_frame_put_item(&b, "user:2", 6, "live", 4, 0, 30, 2));
    ok(bc_frame_put_del(&b, "user:1", 6));
    ok(bc_frame_put_touch(&b, "user:2", 6, 600));
    ok(bc_frame_put_flush(&b, 0, 3));
    ok(bc_frame_put_flush(&b, 1900000000, 0));
    ok(bc_frame_put_drop(&b, 12));
    ok(bc_frame_put_ping(&b, 4096));
    ok(bc_frame_put_ack(&b, 4096));
    emit_raw("frame", "repl-stream", &b);
    emit_payloads("frame", "repl-stream-payloads", &b);
    emit_raw("repl", "stream", &b);
    emit_payloads("repl", "stream-payloads", &b);
    bc_frame_buf_free(&b);

    /* A resumed stream (not full): no snapshot. */
    memset(&b, 0, sizeof(b));
    ok(bc_frame_put_rhello(&b, false, "0123456789abcdef0123456789abcdef01234567", 123456));
    ok(bc_frame_put_item(&b, "k", 1, "v", 1, 0, 0, 7));
    ok(bc_frame_put_ping(&b, 123460));
    emit_raw("repl", "resume", &b);
    bc_frame_buf_free(&b);
}

/* ---- the memcached text protocol ---- */

static void
proto_seeds(void)
{
    char buf[16384];
    size_t n;

    emit_session("storage", 0,
                 "set a 0 0 5\r\nhello\r\n"
                 "add a 1 0 1\r\nx\r\nadd b 2 100 3\r\nbee\r\n"
                 "replace a 3 0 2\r\nhi\r\nreplace zz 0 0 1\r\nz\r\n"
                 "append a 0 0 3\r\n!!!\r\nprepend a 0 0 2\r\n<<\r\n"
                 "gets a\r\ncas a 9 0 3 1\r\nnew\r\ncas a 9 0 3 18446744073709551615\r\nnew\r\n"
                 "set e 0 0 0\r\n\r\nset bin 0 0 4\r\n\x01\r\n\xff\r\n"
                 "set n 4294967295 -1 2\r\n42\r\n"
                 "set q 0 0 1 noreply\r\nq\r\nadd q 0 0 1 noreply\r\nq\r\n"
                 "cas q 0 0 1 1 noreply\r\nq\r\nget a b e bin n q\r\n");
    emit_session("retrieve", 7,
                 "set k1 1 0 2\r\nv1\r\nset k2 2 0 2\r\nv2\r\n"
                 "get k1\r\nget k1 k2 nope k1\r\ngets k1 k2\r\n"
                 "gat 100 k1 k2\r\ngats 0 k2\r\ngat -1 k1\r\nget k1\r\n"
                 "get\r\ngets\r\ngat 10\r\n");
    emit_session("arith-touch-delete", 'A',
                 "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n"
                 "incr n 1\r\nincr nope 1\r\nset s 0 0 3\r\nabc\r\nincr s 1\r\ndecr n -1\r\n"
                 "incr n 1 noreply\r\ntouch n 100\r\ntouch nope 1\r\ntouch n -1 noreply\r\n"
                 "delete n\r\ndelete n\r\ndelete s 0\r\ndelete s noreply\r\n");
    emit_session("admin", 'z',
                 "version\r\nverbosity 1\r\nverbosity 0 noreply\r\n"
                 "stats\r\nstats settings\r\nstats items\r\nstats slabs\r\nstats sizes\r\n"
                 "stats conns\r\nstats replication\r\nstats detail dump\r\nstats nonsense\r\n"
                 "stats reset\r\nset a 0 0 1\r\n1\r\nflush_all 100\r\nflush_all 0 noreply\r\n"
                 "flush_all\r\nget a\r\nquit\r\nget a\r\n");
    emit_session("errors", 3,
                 "set a 0 0 3\r\nabcd\r\nget a\r\n"
                 "set b 0 0 -1\r\nset c 0 0 x\r\nset d 0 0\r\nset e\r\n"
                 "set f 0 0 1 noreply extra\r\nf\r\n"
                 "cas g 0 0 1\r\ng\r\nincr\r\ndecr a\r\ntouch a\r\ndelete\r\n"
                 "bogus\r\n\r\n \r\nGET\r\nSET a 0 0 1\r\na\r\n"
                 "get a\nget a\rb\r\n\n"
                 "set \x01 0 0 1\r\nx\r\nget \x7f\r\n"
                 "set toolarge 0 0 999999999\r\n");
    /* A key of 250 bytes (the longest) and of 251; a line of many keys. */
    n = (size_t)snprintf(buf, sizeof(buf), "set ");
    memset(buf + n, 'k', 250);
    n += 250;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, " 0 0 1\r\n1\r\nget ");
    memset(buf + n, 'k', 251);
    n += 251;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\nget");
    for (int i = 0; i < 400; i++) n += (size_t)snprintf(buf + n, sizeof(buf) - n, " key%d", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    emit_session("long-keys-and-lines", 'm', buf);
    /* A value read straight into its item (long), and one swallowed
     * (over the item limit of the fuzz target's cache, 16 KiB). */
    n = (size_t)snprintf(buf, sizeof(buf), "set big 3 0 9000\r\n");
    memset(buf + n, 'x', 9000);
    n += 9000;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\nget big\r\nset huge 0 0 20000\r\n");
    memset(buf + n, 'y', 3000);
    n += 3000;
    buf[n] = '\0';
    emit_session("large-values", 1, buf);
    emit_session("pipelined", 'p',
                 "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b\r\nincr a 1\r\ndelete b\r\n"
                 "get a b\r\nset a 0 0 1 noreply\r\n3\r\nget a\r\nversion\r\nget a\r\n");
    emit_session("http-and-peers", 'h',
                 "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    emit_session("cluster-words", 'c',
                 "bucketcache_peer n-0000000001\r\nget a\r\n"
                 "bucketcache_replicate 1 - 0 n-2\r\nmg foo v\r\nms foo 2\r\nhi\r\n");
}

static void
mcproto_seeds(void)
{
    emit_text("mcproto", "requests",
              "set k 0 0 5\nadd k 1 2 3 noreply\nreplace k 0 0 0\nappend k 0 0 1\n"
              "prepend k 0 0 1\ncas k 0 0 1 99\nget a b c\ngets a\ngat 10 a b\ngats -1 a\n"
              "delete k\ndelete k noreply\nincr k 1\ndecr k 18446744073709551615\n"
              "touch k 0\nflush_all\nflush_all 10 noreply\nversion\nverbosity 1\n"
              "stats\nstats items\nquit\nmn\n");
    emit_text("mcproto", "bad-requests",
              "set k 0 0 -1\nset k 0 0\nget\nincr k x\nset k 4294967296 0 1\n"
              "set k 0 0 1 noreplyx\ncas k 0 0 1\ntouch\nget a\tb\nget a\x01\n");
    emit_text("mcproto", "replies",
              "VALUE a 0 5\r\nhello\r\nVALUE b 4294967295 0 18446744073709551615\r\n\r\nEND\r\n"
              "STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\n"
              "18446744073709551615\r\n0\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\n"
              "SERVER_ERROR MOVED 1 2 3\r\nSTAT pid 7\r\nSTAT version 1.6\r\nEND\r\n"
              "VERSION 1.6.18\r\n");
    emit_text("mcproto", "bad-replies",
              "VALUE a 0 99\r\nshort\r\nEND\r\nVALUE a x 1\r\nVALUE\r\nEND\r\nSTORED\nSTAT\r\n");
}

static void
wire_seeds(void)
{
    char buf[4096], line[256];
    size_t n = 0;
    static const struct {
        bc_wire_refusal_kind_t kind;
        uint32_t bucket, gid;
        uint64_t epoch;
    } refusals[] = {
        {BC_WIRE_REFUSAL_MOVED, 0, 1, 1},
        {BC_WIRE_REFUSAL_MOVED, UINT32_MAX, UINT32_MAX, UINT64_MAX},
        {BC_WIRE_REFUSAL_NO_OWNER, 17, 0, 4},
        {BC_WIRE_REFUSAL_READONLY, 4095, 0, 123456789},
        {BC_WIRE_REFUSAL_NOT_PRIMARY, 9, 3, 2},
    };
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        bc_wire_refusal_t r = {.kind = refusals[i].kind, .bucket = refusals[i].bucket,
                               .gid = refusals[i].gid, .epoch = refusals[i].epoch};
        size_t m = bc_wire_refusal_format(&r, line, sizeof(line));
        if (m == 0) exit(2);
        memcpy(buf + n, line, m);
        n += m;
    }
    for (int f = BC_WIRE_FWD_NONE + 1; bc_wire_fwd_failure_line((bc_wire_fwd_failure_t)f) != NULL;
         f++) {
        const char *l = bc_wire_fwd_failure_line((bc_wire_fwd_failure_t)f);
        memcpy(buf + n, l, strlen(l));
        n += strlen(l);
    }
    bc_wire_peer_t ph = {.name = "n-0000000042"};
    n += bc_wire_peer_format(&ph, buf + n, sizeof(buf) - n);
    snprintf(ph.nonce, sizeof(ph.nonce), "0123456789abcdef0123456789abcdef");
    n += bc_wire_peer_format(&ph, buf + n, sizeof(buf) - n);
    bc_wire_challenge_t ch = {.name = "n-0000000001", .nonce = "fedcba9876543210fedcba9876543210",
                              .proof = "00112233445566778899aabbccddeeff"
                                       "00112233445566778899aabbccddeeff"};
    n += bc_wire_challenge_format(&ch, buf + n, sizeof(buf) - n);
    n += bc_wire_auth_format(ch.proof, buf + n, sizeof(buf) - n);
    for (int f = BC_WIRE_PEER_AUTH_NONE + 1;
         bc_wire_peer_auth_line((bc_wire_peer_auth_failure_t)f) != NULL; f++) {
        const char *l = bc_wire_peer_auth_line((bc_wire_peer_auth_failure_t)f);
        memcpy(buf + n, l, strlen(l));
        n += strlen(l);
    }
    bc_wire_replicate_t h = {.gid = 7, .offset = UINT64_MAX};
    snprintf(h.replid, sizeof(h.replid), "0123456789abcdef0123456789abcdef01234567");
    snprintf(h.name, sizeof(h.name), "n-0000000043");
    n += bc_wire_replicate_format(&h, buf + n, sizeof(buf) - n);
    h.replid[0] = '\0';
    h.offset = 0;
    n += bc_wire_replicate_format(&h, buf + n, sizeof(buf) - n);
    snprintf(h.nonce, sizeof(h.nonce), "%s", ph.nonce);
    n += bc_wire_replicate_format(&h, buf + n, sizeof(buf) - n);
    emit("wire", "formatted", buf, n);
    /* Near misses every parser must refuse: leading zeros, extra or
     * missing spaces and fields, out-of-range numbers, other cases. */
    emit_text("wire", "near-misses",
              "SERVER_ERROR MOVED 01 2 3\r\nSERVER_ERROR MOVED  1 2 3\r\nSERVER_ERROR MOVED 1 2 3 \r\n"
              "SERVER_ERROR MOVED 1 2\r\nSERVER_ERROR MOVED 4294967296 1 1\r\n"
              "SERVER_ERROR NO_OWNER 1 18446744073709551616\r\nSERVER_ERROR moved 1 2 3\r\n"
              "SERVER_ERROR READONLY -1 2\r\nSERVER_ERROR NOT_PRIMARY 1 0 2\r\n"
              "SERVER_ERROR forward failed\r\nSERVER_ERROR forward timeout \r\n"
              "bucketcache_peer\r\nbucketcache_peer a b\r\nbucketcache_peer \x01\r\n"
              "bucketcache_replicate 0 - 0 n\r\nbucketcache_replicate 1 -- 0 n\r\n"
              "bucketcache_replicate 1 - 00 n\r\nbucketcache_replicate 1 - 0\r\n"
              "bucketcache_replicatex 1 - 0 n\r\n"
              "bucketcache_peer n 0123456789ABCDEF0123456789abcdef\r\n"
              "bucketcache_replicate 1 - 0 n 0123\r\n"
              "BUCKETCACHE_CHALLENGE  n 0123456789abcdef0123456789abcdef 00\r\n"
              "bucketcache_auth 00112233\r\n");
}

/* ---- access control (fuzz_auth: header lines, then NUL and a secret file) ---- */

static void
auth_seeds(void)
{
    emit_text("auth", "bearer", "Bearer ZnV6ei10b2tlbi0xMjM0NTY3OA==");
    emit_text("auth", "headers",
              "bearer  abc==\t\nBasic dXNlcg==\nBearer\nBearer =abc\nBearer a b\n"
              "http://127.0.0.1:11290\nHTTP://127.0.0.1:11290\nhttp://evil.example\nnull\n"
              "cross-site\nsame-origin\n[::1]:80\nlocalhost.\na.localhost:1\n127.1.2.3\n"
              "application/json; charset=utf-8\nmultipart/form-data; boundary=x\n");
    static const char file[] = "Bearer x\n\0# token\r\nZnV6ei10b2tlbi0xMjM0NTY3OA==\r\n"
                               "  c2Vjb25kLXRva2VuLWJiYmJiYmJi\t\nwriter:pw:x\n";
    emit("auth", "with-file", file, sizeof(file) - 1);
}

/* ---- binary protocol (fuzz_binary) ---- */

typedef struct bin_seed {
    unsigned char b[4096];
    size_t n;
} bin_seed_t;

/* One request packet; bodylen_extra pads the declared body (malformed). */
static void
bin_pkt(bin_seed_t *s, unsigned char op, const char *key, const void *ext, unsigned char next,
        const char *val, unsigned long long cas, int bodylen_extra)
{
    size_t nkey = key != NULL ? strlen(key) : 0, nval = val != NULL ? strlen(val) : 0;
    unsigned long body = (unsigned long)(next + nkey + nval) + (unsigned long)bodylen_extra;
    unsigned char *p = s->b + s->n;
    if (s->n + 24 + next + nkey + nval > sizeof(s->b)) exit(2);
    memset(p, 0, 24);
    p[0] = 0x80;
    p[1] = op;
    p[2] = (unsigned char)(nkey >> 8);
    p[3] = (unsigned char)nkey;
    p[4] = next;
    for (int i = 0; i < 4; i++) p[8 + i] = (unsigned char)(body >> (24 - 8 * i));
    p[15] = (unsigned char)(s->n & 0xff);                  /* opaque */
    for (int i = 0; i < 8; i++) p[16 + i] = (unsigned char)(cas >> (56 - 8 * i));
    s->n += 24;
    /* memcpy from NULL is undefined even for 0 bytes (UBSan says so) */
    if (next > 0) memcpy(s->b + s->n, ext, next);
    s->n += next;
    if (nkey > 0) memcpy(s->b + s->n, key, nkey);
    s->n += nkey;
    if (nval > 0) memcpy(s->b + s->n, val, nval);
    s->n += nval;
}

static void
bin_emit(const char *name, char first, const bin_seed_t *s)
{
    char *buf = malloc(s->n + 1);
    if (buf == NULL) exit(2);
    buf[0] = first;
    memcpy(buf + 1, s->b, s->n);
    emit("binary", name, buf, s->n + 1);
    free(buf);
}

static void
binary_seeds(void)
{
    static const unsigned char set_ext[8] = {0, 0, 0, 5, 0, 0, 0, 0};
    static const unsigned char touch_ext[4] = {0, 0, 1, 0};
    static const unsigned char incr_ext[20] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    static const unsigned char incr_noviv[20] = {0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 0xff, 0xff, 0xff, 0xff};
    static const unsigned char flush_ext[4] = {0, 0, 0, 10};
    bin_seed_t s;

    /* every opcode once (the magic of the first packet is the harness's) */
    s.n = 0;
    bin_pkt(&s, 0x01, "a", set_ext, 8, "hello", 0, 0);
    bin_pkt(&s, 0x00, "a", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x0c, "a", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x02, "a", set_ext, 8, "x", 0, 0);
    bin_pkt(&s, 0x03, "b", set_ext, 8, "x", 0, 0);
    bin_pkt(&s, 0x0e, "a", NULL, 0, "++", 0, 0);
    bin_pkt(&s, 0x0f, "a", NULL, 0, "--", 0, 0);
    bin_pkt(&s, 0x05, "n", incr_ext, 20, NULL, 0, 0);
    bin_pkt(&s, 0x06, "n", incr_ext, 20, NULL, 0, 0);
    bin_pkt(&s, 0x05, "m", incr_noviv, 20, NULL, 0, 0);
    bin_pkt(&s, 0x1c, "a", touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x1d, "a", touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x23, "a", touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x04, "a", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x0b, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x10, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x10, "settings", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x10, "detail dump", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x08, NULL, flush_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x07, NULL, NULL, 0, NULL, 0, 0);
    bin_emit("every-opcode", 7, &s);

    /* quiet forms mixed, CAS checks */
    s.n = 0;
    bin_pkt(&s, 0x11, "q", set_ext, 8, "1", 0, 0);
    bin_pkt(&s, 0x09, "q", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x0d, "none", NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x1e, "none", touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x24, "q", touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x12, "q", set_ext, 8, "2", 0, 0);
    bin_pkt(&s, 0x13, "q", set_ext, 8, "3", 99, 0);
    bin_pkt(&s, 0x15, "q", incr_ext, 20, NULL, 0, 0);
    bin_pkt(&s, 0x16, "q", incr_ext, 20, NULL, 7, 0);
    bin_pkt(&s, 0x19, "q", NULL, 0, "a", 0, 0);
    bin_pkt(&s, 0x1a, "q", NULL, 0, "b", 5, 0);
    bin_pkt(&s, 0x14, "q", NULL, 0, NULL, 3, 0);
    bin_pkt(&s, 0x18, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x17, NULL, NULL, 0, NULL, 0, 0);
    bin_emit("quiet", 41, &s);

    /* malformed: unknown and SASL opcodes swallow, wrong lengths close */
    s.n = 0;
    bin_pkt(&s, 0x50, "k", NULL, 0, "abc", 0, 0);
    bin_pkt(&s, 0x1b, NULL, touch_ext, 4, NULL, 0, 0);
    bin_pkt(&s, 0x20, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x21, "PLAIN", NULL, 0, "\001u\001p", 0, 0);
    bin_pkt(&s, 0x10, "nosuch", NULL, 0, NULL, 0, 24);
    bin_pkt(&s, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    bin_pkt(&s, 0x00, "k", touch_ext, 4, NULL, 0, 0);
    bin_emit("malformed", 3, &s);

    s.n = 0;
    bin_pkt(&s, 0x00, "abc", NULL, 0, NULL, 0, -2);
    bin_emit("keylen-over-bodylen", 11, &s);
    s.n = 0;
    bin_pkt(&s, 0x01, "big", set_ext, 8, "0123456789", 0, 2000000);
    bin_pkt(&s, 0x0a, NULL, NULL, 0, NULL, 0, 0);
    bin_emit("value-too-large", 5, &s);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        checking = true;
        root = argv[2];
    } else if (argc == 2 && argv[1][0] != '-') {
        root = argv[1];
    } else {
        fprintf(stderr, "usage: gen_fuzz_seeds [--check] DIR   (DIR: tests/fuzz/corpus)\n");
        return 2;
    }
    frame_seeds();
    proto_seeds();
    mcproto_seeds();
    wire_seeds();
    auth_seeds();
    binary_seeds();
    if (checking && problems == 0) printf("gen_fuzz_seeds: every seed under %s is current\n", root);
    return problems == 0 ? 0 : 1;
}
