/*
 * frame_codec.c -- the peer frame codec (common/bc_frame.c) against the
 * same frames encoded and decoded with msgpack-c's packer and unpacker,
 * on the replication stream's record mix.
 *
 * WHAT IT DOES
 *   Builds a fixed, seeded list of replication records -- what a primary
 *   streams for cache changes and a backup sends back:
 *
 *       ITEM 70%   DEL 12%   TOUCH 10%   ACK 4%   PING 3%   FLUSH, DROP 0.5% each
 *
 *   keys of 8..40 bytes, and values of 100 bytes ("small", the value size
 *   of the memcached comparison in docs/benchmarks.md) or 16 B..4 KiB,
 *   log-uniform ("mixed").  Each codec then encodes the whole list into
 *   one buffer (what repl.c does per record) and decodes that buffer frame
 *   by frame (what a backup does).  Both codecs keep the framing: length,
 *   CRC-32C, one msgpack array per frame.
 *
 *   Before timing it checks that the two encoders produce the same bytes
 *   and the two decoders the same frames, for every record, so the figures
 *   compare two implementations of one format.
 *
 *   Timing: R rounds (default 7); in each, both codecs run for about T ms
 *   (default 300) of this thread's CPU time each, in alternating order
 *   (CPU time, not wall time: on a shared machine the time a run spends
 *   descheduled says nothing about its codec).  Printed per mix: records/s
 *   of each codec for encode, decode and encode+decode (medians over the
 *   rounds), and msgpack-c's median per-round ratio to the hand codec
 *   (above 1: msgpack-c is faster).
 *
 * HOW msgpack-c IS USED (its fastest documented path for each direction)
 *   encode: msgpack_packer over a write callback that appends to the
 *           frame buffer, whose room is reserved once per frame, as the
 *           hand codec does;
 *   decode: msgpack_unpack into one msgpack_zone kept across frames and
 *           cleared after each (msgpack_unpack_next would allocate and
 *           free an 8 KiB zone per frame), then the same type and range
 *           checks as bc_frame_decode on the object tree.
 *
 *   bench_frame_codec [-r rounds] [-t ms_per_codec_per_round] [-n records]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "../../common/bc_frame.h"

/* ---- the record mix ---- */

typedef struct record {
    bc_frame_type_t type;
    const char *key;
    size_t nkey;
    const char *value;
    size_t nvalue;
    uint32_t flags, ttl, when;
    uint64_t cas, offset, mark;
    uint32_t bucket;
} record_t;

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* n records; keys and values point into *pool (one allocation). */
static record_t *
make_mix(size_t n, bool mixed_values, uint64_t seed, char **pool)
{
    record_t *r = calloc(n, sizeof(*r));
    size_t cap = n * (40 + (mixed_values ? 4096 : 100));
    char *p = malloc(cap);
    if (r == NULL || p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < cap; i++) p[i] = (char)('!' + xorshift(&seed) % 90);
    *pool = p;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = xorshift(&seed) % 1000;
        record_t *x = &r[i];
        x->nkey = 8 + xorshift(&seed) % 33;
        x->key = p + at;
        at += x->nkey;
        if (d < 700) {
            x->type = BC_FRAME_ITEM;
            if (mixed_values) {
                /* log-uniform over 16 B .. 4 KiB */
                unsigned shift = 4 + (unsigned)(xorshift(&seed) % 8);
                x->nvalue = (size_t)((1u << shift) + xorshift(&seed) % (1u << shift));
            } else {
                x->nvalue = 100;
            }
            x->value = p + at;
            at += x->nvalue;
            x->flags = (uint32_t)(xorshift(&seed) % 4 == 0 ? xorshift(&seed) : 0);
            x->ttl = (uint32_t)(xorshift(&seed) % 2 ? xorshift(&seed) % 86400 : 0);
            x->cas = xorshift(&seed) >> (xorshift(&seed) % 40);
        } else if (d < 820) {
            x->type = BC_FRAME_DEL;
        } else if (d < 920) {
            x->type = BC_FRAME_TOUCH;
            x->ttl = (uint32_t)(xorshift(&seed) % 86400);
        } else if (d < 960) {
            x->type = BC_FRAME_ACK;
            x->offset = xorshift(&seed) >> 20;
        } else if (d < 990) {
            x->type = BC_FRAME_PING;
            x->offset = xorshift(&seed) >> 20;
        } else if (d < 995) {
            x->type = BC_FRAME_FLUSH;
            x->when = (uint32_t)(xorshift(&seed) % 2 ? 1700000000u : 0);
            x->mark = xorshift(&seed) >> 16;
        } else {
            x->type = BC_FRAME_DROP;
            x->bucket = (uint32_t)(xorshift(&seed) % 1024);
        }
    }
    return r;
}

/* ---- the hand codec (common/bc_frame.c) ---- */

static bc_status_t
hand_put(bc_frame_buf_t *b, const record_t *x)
{
    switch (x->type) {
    case BC_FRAME_ITEM:
        return bc_frame_put_item(b, x->key, x->nkey, x->value, x->nvalue, x->flags, x->ttl, x->cas);
    case BC_FRAME_DEL: return bc_frame_put_del(b, x->key, x->nkey);
    case BC_FRAME_TOUCH: return bc_frame_put_touch(b, x->key, x->nkey, x->ttl);
    case BC_FRAME_ACK: return bc_frame_put_ack(b, x->offset);
    case BC_FRAME_PING: return bc_frame_put_ping(b, x->offset);
    case BC_FRAME_FLUSH: return bc_frame_put_flush(b, x->when, x->mark);
    case BC_FRAME_DROP: return bc_frame_put_drop(b, x->bucket);
    default: return BC_EINVAL;
    }
}

/* ---- the same frames with msgpack-c ---- */

static bool
grow(bc_frame_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static int
mp_append(void *data, const char *buf, size_t len)
{
    bc_frame_buf_t *b = data;
    if (!grow(b, len)) return -1;
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

static void
put_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static bc_status_t
mp_put(bc_frame_buf_t *b, const record_t *x)
{
    if (!grow(b, BC_FRAME_HEADER_LEN + 48 + x->nkey + x->nvalue)) return BC_ENOMEM;
    size_t start = b->len;
    b->len += BC_FRAME_HEADER_LEN;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, mp_append);
    int rc = 0;
    switch (x->type) {
    case BC_FRAME_ITEM:
        rc |= msgpack_pack_array(&pk, 6);
        rc |= msgpack_pack_uint8(&pk, BC_FRAME_ITEM);
        rc |= msgpack_pack_bin(&pk, x->nkey);
        rc |= msgpack_pack_bin_body(&pk, x->key, x->nkey);
        rc |= msgpack_pack_bin(&pk, x->nvalue);
        rc |= msgpack_pack_bin_body(&pk, x->value, x->nvalue);
        rc |= msgpack_pack_uint32(&pk, x->flags);
        rc |= msgpack_pack_uint32(&pk, x->ttl);
        rc |= msgpack_pack_uint64(&pk, x->cas);
        break;
    case BC_FRAME_DEL:
    case BC_FRAME_TOUCH:
        rc |= msgpack_pack_array(&pk, x->type == BC_FRAME_DEL ? 2 : 3);
        rc |= msgpack_pack_uint8(&pk, (uint8_t)x->type);
        rc |= msgpack_pack_bin(&pk, x->nkey);
        rc |= msgpack_pack_bin_body(&pk, x->key, x->nkey);
        if (x->type == BC_FRAME_TOUCH) rc |= msgpack_pack_uint32(&pk, x->ttl);
        break;
    case BC_FRAME_ACK:
    case BC_FRAME_PING:
        rc |= msgpack_pack_array(&pk, 2);
        rc |= msgpack_pack_uint8(&pk, (uint8_t)x->type);
        rc |= msgpack_pack_uint64(&pk, x->offset);
        break;
    case BC_FRAME_FLUSH:
        rc |= msgpack_pack_array(&pk, 3);
        rc |= msgpack_pack_uint8(&pk, BC_FRAME_FLUSH);
        rc |= msgpack_pack_uint32(&pk, x->when);
        rc |= msgpack_pack_uint64(&pk, x->mark);
        break;
    case BC_FRAME_DROP:
        rc |= msgpack_pack_array(&pk, 2);
        rc |= msgpack_pack_uint8(&pk, BC_FRAME_DROP);
        rc |= msgpack_pack_uint32(&pk, x->bucket);
        break;
    default:
        return BC_EINVAL;
    }
    if (rc != 0) return BC_ENOMEM;
    size_t plen = b->len - start - BC_FRAME_HEADER_LEN;
    char *h = b->data + start;
    put_be32(h, (uint32_t)plen);
    put_be32(h + 4, bc_frame_crc32c(0, h + BC_FRAME_HEADER_LEN, plen));
    return BC_OK;
}

static bool
obj_uint(const msgpack_object *o, uint64_t max, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) return false;
    *v = o->via.u64;
    return true;
}

static bool
obj_bytes(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *n = o->via.bin.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *n = o->via.str.size;
        return true;
    }
    return false;
}

static uint32_t
get_be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* bc_frame_decode's contract for the replication frame types, on
 * msgpack-c's object tree.  The zone is cleared by the caller. */
static bc_status_t
mp_decode(msgpack_zone *zone, const char *buf, size_t len, size_t max_payload, bc_frame_t *out,
          size_t *consumed)
{
    *consumed = 0;
    if (len < BC_FRAME_HEADER_LEN) return BC_EAGAIN;
    size_t plen = get_be32(buf);
    if (plen > max_payload) return BC_ETOOLARGE;
    if (plen == 0) return BC_EPROTO;
    if (len - BC_FRAME_HEADER_LEN < plen) return BC_EAGAIN;
    const char *payload = buf + BC_FRAME_HEADER_LEN;
    if (bc_frame_crc32c(0, payload, plen) != get_be32(buf + 4)) return BC_EPROTO;
    /* the outer array must be small: msgpack-c allocates room for as many
     * elements as an array header claims before it reads any of them */
    if (((unsigned char)payload[0] & 0xf0) != 0x90) return BC_EPROTO;
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(payload, plen, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS) return BC_EPROTO;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size == 0) return BC_EPROTO;
    const msgpack_object *e = o.via.array.ptr;
    uint32_t n = o.via.array.size;
    uint64_t type, v;
    memset(out, 0, sizeof(*out));
    if (!obj_uint(&e[0], 255, &type)) return BC_EPROTO;
    switch (type) {
    case BC_FRAME_ITEM:
        if (n != 6 || !obj_bytes(&e[1], &out->key, &out->nkey) ||
            !obj_bytes(&e[2], &out->value, &out->nvalue)) {
            return BC_EPROTO;
        }
        if (!obj_uint(&e[3], UINT32_MAX, &v)) return BC_EPROTO;
        out->flags = (uint32_t)v;
        if (!obj_uint(&e[4], UINT32_MAX, &v)) return BC_EPROTO;
        out->ttl = (uint32_t)v;
        if (!obj_uint(&e[5], UINT64_MAX, &out->cas)) return BC_EPROTO;
        break;
    case BC_FRAME_DEL:
    case BC_FRAME_TOUCH:
        if (n != (type == BC_FRAME_DEL ? 2u : 3u) || !obj_bytes(&e[1], &out->key, &out->nkey)) {
            return BC_EPROTO;
        }
        if (type == BC_FRAME_TOUCH) {
            if (!obj_uint(&e[2], UINT32_MAX, &v)) return BC_EPROTO;
            out->ttl = (uint32_t)v;
        }
        break;
    case BC_FRAME_FLUSH:
        if (n != 3 || !obj_uint(&e[1], UINT32_MAX, &v)) return BC_EPROTO;
        out->when = (uint32_t)v;
        if (!obj_uint(&e[2], UINT64_MAX, &out->mark)) return BC_EPROTO;
        break;
    case BC_FRAME_DROP:
    case BC_FRAME_PING:
    case BC_FRAME_ACK:
        if (n != 2 || !obj_uint(&e[1], type == BC_FRAME_DROP ? UINT32_MAX : UINT64_MAX, &v)) {
            return BC_EPROTO;
        }
        if (type == BC_FRAME_DROP) out->bucket = (uint32_t)v;
        else out->offset = v;
        break;
    default:
        return BC_EPROTO;
    }
    out->type = (bc_frame_type_t)type;
    *consumed = BC_FRAME_HEADER_LEN + plen;
    return BC_OK;
}

/* ---- the runs ---- */

#define MAXP (1u << 20)

typedef enum { HAND = 0, MSGPACK = 1 } codec_t;
static const char *const codec_names[] = {"hand", "msgpack-c"};

/* Encodes all n records into b (emptied first). */
static void
encode_all(codec_t c, const record_t *r, size_t n, bc_frame_buf_t *b)
{
    b->len = 0;
    for (size_t i = 0; i < n; i++) {
        bc_status_t st = c == HAND ? hand_put(b, &r[i]) : mp_put(b, &r[i]);
        if (st != BC_OK) {
            fprintf(stderr, "%s: encoding record %zu failed\n", codec_names[c], i);
            exit(1);
        }
    }
}

/* Decodes b frame by frame; returns a checksum of the fields so the
 * compiler cannot drop the work. */
static uint64_t
decode_all(codec_t c, msgpack_zone *zone, const bc_frame_buf_t *b, size_t n)
{
    uint64_t sum = 0;
    size_t pos = 0, frames = 0;
    while (pos < b->len) {
        bc_frame_t f;
        size_t used;
        bc_status_t st = c == HAND ? bc_frame_decode(b->data + pos, b->len - pos, MAXP, &f, &used,
                                                     NULL, 0)
                                   : mp_decode(zone, b->data + pos, b->len - pos, MAXP, &f, &used);
        if (c == MSGPACK) msgpack_zone_clear(zone);
        if (st != BC_OK) {
            fprintf(stderr, "%s: decoding frame %zu failed: %s\n", codec_names[c], frames,
                    bc_status_str(st));
            exit(1);
        }
        sum += (uint64_t)f.type + f.nkey + f.nvalue + f.ttl + f.cas + f.offset;
        pos += used;
        frames++;
    }
    if (frames != n) {
        fprintf(stderr, "%s: %zu frames decoded, %zu encoded\n", codec_names[c], frames, n);
        exit(1);
    }
    return sum;
}

static bool
same_frame(const bc_frame_t *a, const bc_frame_t *b)
{
    return a->type == b->type && a->nkey == b->nkey &&
           (a->nkey == 0 || memcmp(a->key, b->key, a->nkey) == 0) && a->nvalue == b->nvalue &&
           (a->nvalue == 0 || memcmp(a->value, b->value, a->nvalue) == 0) &&
           a->flags == b->flags && a->ttl == b->ttl && a->cas == b->cas &&
           a->offset == b->offset && a->when == b->when && a->mark == b->mark &&
           a->bucket == b->bucket;
}

/* The two codecs agree on every byte and every field. */
static void
check_agree(const record_t *r, size_t n, msgpack_zone *zone)
{
    bc_frame_buf_t h = {0}, m = {0};
    encode_all(HAND, r, n, &h);
    encode_all(MSGPACK, r, n, &m);
    if (h.len != m.len || memcmp(h.data, m.data, h.len) != 0) {
        size_t i = 0;
        while (i < h.len && i < m.len && h.data[i] == m.data[i]) i++;
        fprintf(stderr, "the encoders differ at byte %zu of %zu/%zu\n", i, h.len, m.len);
        exit(1);
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        bc_frame_t a, b;
        size_t ua, ub;
        if (bc_frame_decode(h.data + pos, h.len - pos, MAXP, &a, &ua, NULL, 0) != BC_OK ||
            mp_decode(zone, h.data + pos, h.len - pos, MAXP, &b, &ub) != BC_OK || ua != ub ||
            !same_frame(&a, &b)) {
            fprintf(stderr, "the decoders differ on frame %zu\n", i);
            exit(1);
        }
        msgpack_zone_clear(zone);
        pos += ua;
    }
    bc_frame_buf_free(&h);
    bc_frame_buf_free(&m);
}

typedef struct rates {
    double enc, dec, both;         /* records per second */
} rates_t;

/* This thread's CPU time in ns: time spent descheduled on a busy machine
 * is not charged to whichever codec happened to be running. */
static uint64_t
cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs codec c for about ms milliseconds of CPU time: encode, then
 * decode, the whole list, as many times as fit. */
static rates_t
run(codec_t c, const record_t *r, size_t n, msgpack_zone *zone, int ms, uint64_t *sink)
{
    bc_frame_buf_t b = {0};
    encode_all(c, r, n, &b);               /* warm: buffer at full size */
    uint64_t enc_ns = 0, dec_ns = 0, loops = 0;
    uint64_t end = cpu_ns() + (uint64_t)ms * 1000000u;
    do {
        uint64_t t0 = cpu_ns();
        encode_all(c, r, n, &b);
        uint64_t t1 = cpu_ns();
        *sink += decode_all(c, zone, &b, n);
        uint64_t t2 = cpu_ns();
        enc_ns += t1 - t0;
        dec_ns += t2 - t1;
        loops++;
    } while (cpu_ns() < end);
    bc_frame_buf_free(&b);
    double recs = (double)n * (double)loops;
    rates_t out = {recs * 1e9 / (double)enc_ns, recs * 1e9 / (double)dec_ns,
                   recs * 1e9 / (double)(enc_ns + dec_ns)};
    return out;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_ROUNDS 64

static void
bench_mix(const char *name, bool mixed_values, size_t n, int rounds, int ms, msgpack_zone *zone)
{
    char *pool;
    record_t *r = make_mix(n, mixed_values, 0x2545f4914f6cdd1dull, &pool);
    check_agree(r, n, zone);
    bc_frame_buf_t b = {0};
    encode_all(HAND, r, n, &b);
    printf("mix %s: %zu records, %.1f bytes per frame on average; encoders and decoders "
           "agree on every frame\n", name, n, (double)b.len / (double)n);
    bc_frame_buf_free(&b);

    double v[2][3][MAX_ROUNDS], ratio[3][MAX_ROUNDS];
    uint64_t sink = 0;
    for (int i = 0; i < rounds; i++) {
        rates_t x[2];
        codec_t first = (codec_t)(i % 2);
        x[first] = run(first, r, n, zone, ms, &sink);
        x[!first] = run((codec_t)!first, r, n, zone, ms, &sink);
        for (int c = 0; c < 2; c++) {
            v[c][0][i] = x[c].enc;
            v[c][1][i] = x[c].dec;
            v[c][2][i] = x[c].both;
        }
        ratio[0][i] = x[MSGPACK].enc / x[HAND].enc;
        ratio[1][i] = x[MSGPACK].dec / x[HAND].dec;
        ratio[2][i] = x[MSGPACK].both / x[HAND].both;
    }
    static const char *const what[] = {"encode", "decode", "enc+dec"};
    printf("  %-8s %16s %16s %18s\n", "", "hand rec/s", "msgpack-c rec/s", "msgpack-c/hand");
    for (int w = 0; w < 3; w++) {
        printf("  %-8s %16.0f %16.0f %18.2f\n", what[w], median(v[HAND][w], rounds),
               median(v[MSGPACK][w], rounds), median(ratio[w], rounds));
    }
    printf("  (medians of %d rounds of %d ms per codec; checksum %" PRIu64 ")\n", rounds, ms,
           sink & 0xff);
    free(r);
    free(pool);
}

int
main(int argc, char **argv)
{
    int rounds = 7, ms = 300, opt;
    size_t n = 4096;
    while ((opt = getopt(argc, argv, "r:t:n:")) != -1) {
        switch (opt) {
        case 'r': rounds = atoi(optarg); break;
        case 't': ms = atoi(optarg); break;
        case 'n': n = (size_t)strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-r rounds] [-t ms] [-n records]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || ms < 1 || n < 1) {
        fprintf(stderr, "rounds 1..%d, ms >= 1, records >= 1\n", MAX_ROUNDS);
        return 2;
    }
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE)) return 1;
    printf("msgpack-c %s; hand codec: common/bc_frame.c\n", msgpack_version());
    bench_mix("small (100-byte values)", false, n, rounds, ms, &zone);
    bench_mix("mixed (16 B - 4 KiB values)", true, n, rounds, ms, &zone);
    msgpack_zone_destroy(&zone);
    return 0;
}
