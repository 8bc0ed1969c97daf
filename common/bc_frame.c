/*
 * bc_frame.c -- see bc_frame.h.
 *
 * The msgpack here is the small subset the frames use, written by hand:
 * arrays, unsigned integers, bin and str.  The encoder always picks the
 * shortest standard encoding; the decoder accepts every standard width
 * (and non-negative signed integers, which some encoders emit), so frames
 * from any msgpack library decode.  tests/unit/test_frame.c checks both
 * directions against libmsgpack (msgpack-c), and that the bytes are those
 * earlier nodes wrote (a cluster upgrades one node at a time).
 *
 * WHY NOT msgpack-c's packer and unpacker (it is a test dependency only)
 *   - Speed, on the replication hot path (a frame per write, encoded on
 *     the primary, decoded on each backup): tests/bench/frame_codec.c
 *     runs the same record mix through both, byte-identical frames, CRC
 *     included.  msgpack-c does 0.67-0.69x the records per second of this
 *     code with 100-byte values (encode 0.57-0.60x, decode 0.75-0.77x)
 *     and 0.76-0.87x with 16 B - 4 KiB values (docs/benchmarks.md).
 *   - Memory on hostile input: msgpack-c's unpacker allocates room for as
 *     many objects as an array header claims before reading them, so the
 *     7-byte payload 92 01 dd 01 00 00 00 makes it allocate 512 MiB; a
 *     peer's frame could only be handed to it after a walk of every
 *     header, which is this decoder.  This one never allocates.
 *   The subset is small (arrays, integers, bin, str); the interoperability
 *   tests keep it honest.
 *
 * CRC-32C runs on the SSE 4.2 crc32 instruction when the CPU has it
 * (checked once at run time), three streams at a time (Mark Adler's
 * crc32c.c), otherwise slicing-by-8 tables: either way it is far faster
 * than the loopback link it protects.
 */
#include "bc_frame.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define FRAME_HAVE_SSE42 1
#endif

/* ---- CRC-32C ---- */

#define CRC32C_POLY 0x82f63b78u   /* reflected Castagnoli */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#ifdef FRAME_HAVE_SSE42
static bool crc_hw;

/*
 * crc32 has a latency of 3 cycles but a throughput of 1 per cycle, so one
 * dependent chain runs at a third of the instruction's speed.  crc_hard
 * runs three chains over three adjacent blocks of CRC_LONG (then
 * CRC_SHORT) bytes and joins them: the CRC of A|B is the CRC of A shifted
 * over len(B) zero bytes, xor the CRC of B from 0.  crc_long and
 * crc_short apply that shift a byte of the CRC at a time (Mark Adler's
 * crc32c.c, crc32c_hw).  Built by crc_init, only when the CPU has SSE 4.2.
 */
#define CRC_LONG  8192
#define CRC_SHORT 256

static uint32_t crc_long[4][256];
static uint32_t crc_short[4][256];

/* mat (32 columns, GF(2)) times vec. */
static uint32_t
gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (; vec != 0; vec >>= 1, mat++) {
        if (vec & 1u) sum ^= *mat;
    }
    return sum;
}

static void
gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends len zero bytes to a CRC (len a power of two,
 * at least 1) into four byte-at-a-time tables. */
static void
crc_zeros(uint32_t zeros[4][256], size_t len)
{
    uint32_t op[32], sq[32];
    op[0] = CRC32C_POLY;           /* one zero bit */
    for (int n = 1; n < 32; n++) op[n] = 1u << (n - 1);
    for (int k = 0; k < 3; k++) {  /* 2, 4, 8 bits: one zero byte */
        gf2_square(sq, op);
        memcpy(op, sq, sizeof(op));
    }
    for (; len > 1; len >>= 1) {
        gf2_square(sq, op);
        memcpy(op, sq, sizeof(op));
    }
    for (uint32_t i = 0; i < 256; i++) {
        zeros[0][i] = gf2_times(op, i);
        zeros[1][i] = gf2_times(op, i << 8);
        zeros[2][i] = gf2_times(op, i << 16);
        zeros[3][i] = gf2_times(op, i << 24);
    }
}

static inline uint32_t
crc_shift(uint32_t zeros[4][256], uint32_t c)
{
    return zeros[0][c & 0xff] ^ zeros[1][(c >> 8) & 0xff] ^ zeros[2][(c >> 16) & 0xff] ^
           zeros[3][c >> 24];
}
#endif

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
        }
    }
#ifdef FRAME_HAVE_SSE42
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2") != 0;
    if (crc_hw) {
        crc_zeros(crc_long, CRC_LONG);
        crc_zeros(crc_short, CRC_SHORT);
    }
#endif
}

static uint32_t
crc_soft(uint32_t c, const unsigned char *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7u) != 0) {
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#ifdef FRAME_HAVE_SSE42
/* c continued over the 3 * block bytes at p (8-byte aligned), as three
 * chains joined with zeros (the shift over block bytes). */
__attribute__((target("sse4.2"))) static inline uint64_t
crc_hard3(uint64_t c, const unsigned char *p, size_t block, uint32_t zeros[4][256])
{
    uint64_t c1 = 0, c2 = 0;
    const unsigned char *end = p + block;
    do {
        uint64_t v0, v1, v2;
        memcpy(&v0, p, 8);
        memcpy(&v1, p + block, 8);
        memcpy(&v2, p + 2 * block, 8);
        c = _mm_crc32_u64(c, v0);
        c1 = _mm_crc32_u64(c1, v1);
        c2 = _mm_crc32_u64(c2, v2);
        p += 8;
    } while (p < end);
    c = crc_shift(zeros, (uint32_t)c) ^ c1;
    return crc_shift(zeros, (uint32_t)c) ^ c2;
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hard(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    while (n > 0 && ((uintptr_t)p & 7u) != 0) {
        c64 = _mm_crc32_u8((uint32_t)c64, *p++);
        n--;
    }
    for (; n >= 3 * CRC_LONG; p += 3 * CRC_LONG, n -= 3 * CRC_LONG) {
        c64 = crc_hard3(c64, p, CRC_LONG, crc_long);
    }
    for (; n >= 3 * CRC_SHORT; p += 3 * CRC_SHORT, n -= 3 * CRC_SHORT) {
        c64 = crc_hard3(c64, p, CRC_SHORT, crc_short);
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    while (n-- > 0) c64 = _mm_crc32_u8((uint32_t)c64, *p++);
    return (uint32_t)c64;
}
#endif

uint32_t
bc_frame_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
#ifdef FRAME_HAVE_SSE42
    if (crc_hw) return ~crc_hard(c, data, len);
#endif
    return ~crc_soft(c, data, len);
}

uint32_t
bc__frame_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_soft(~crc, data, len);
}

/* ---- encoding ---- */

void
bc_frame_buf_free(bc_frame_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static bool
buf_reserve(bc_frame_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static inline void
put_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

bc_status_t
bc_frame_buf_reserve(bc_frame_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return BC_OK;
    if (extra > SIZE_MAX - b->len) return BC_ENOMEM;
    char *p = realloc(b->data, b->len + extra);
    if (p == NULL) return BC_ENOMEM;
    b->data = p;
    b->cap = b->len + extra;
    return BC_OK;
}

/* Writes the shortest msgpack unsigned integer; returns bytes written. */
static size_t
mp_uint(char *p, uint64_t v)
{
    if (v < 128) {
        p[0] = (char)v;
        return 1;
    }
    if (v <= 0xff) {
        p[0] = (char)0xcc;
        p[1] = (char)v;
        return 2;
    }
    if (v <= 0xffff) {
        p[0] = (char)0xcd;
        p[1] = (char)(v >> 8);
        p[2] = (char)v;
        return 3;
    }
    if (v <= 0xffffffffu) {
        p[0] = (char)0xce;
        put_be32(p + 1, (uint32_t)v);
        return 5;
    }
    p[0] = (char)0xcf;
    put_be32(p + 1, (uint32_t)(v >> 32));
    put_be32(p + 5, (uint32_t)v);
    return 9;
}

/* A string (fixstr or str 8, n < 256): a frame's magic, a replication
 * id.  Returns bytes written. */
static size_t
mp_str(char *p, const char *str, size_t n)
{
    size_t h = 1;
    if (n <= 31) {
        p[0] = (char)(0xa0 | n);
    } else {
        p[0] = (char)0xd9;
        p[1] = (char)n;
        h = 2;
    }
    memcpy(p + h, str, n);
    return h + n;
}

/* bin header for n bytes; returns bytes written (n < 2^32). */
static size_t
mp_bin_header(char *p, size_t n)
{
    if (n <= 0xff) {
        p[0] = (char)0xc4;
        p[1] = (char)n;
        return 2;
    }
    if (n <= 0xffff) {
        p[0] = (char)0xc5;
        p[1] = (char)(n >> 8);
        p[2] = (char)n;
        return 3;
    }
    p[0] = (char)0xc6;
    put_be32(p + 1, (uint32_t)n);
    return 5;
}

/* Reserves room for a frame whose payload is at most max bytes, returns
 * where the payload starts; frame_close() fills in the header. */
static char *
frame_open(bc_frame_buf_t *b, size_t max)
{
    if (!buf_reserve(b, BC_FRAME_HEADER_LEN + max)) return NULL;
    return b->data + b->len + BC_FRAME_HEADER_LEN;
}

static void
frame_close(bc_frame_buf_t *b, size_t payload_len)
{
    char *h = b->data + b->len;
    put_be32(h, (uint32_t)payload_len);
    put_be32(h + 4, bc_frame_crc32c(0, h + BC_FRAME_HEADER_LEN, payload_len));
    b->len += BC_FRAME_HEADER_LEN + payload_len;
}

static bc_status_t
frame_put_hello(bc_frame_buf_t *b, uint32_t bucket, uint64_t epoch, uint32_t nbuckets, bool delta)
{
    char *p = frame_open(b, 64), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | (delta ? 7 : 6));
    p += mp_uint(p, BC_FRAME_HELLO);
    p += mp_str(p, BC_FRAME_MAGIC, sizeof(BC_FRAME_MAGIC) - 1);
    p += mp_uint(p, BC_FRAME_VERSION);
    p += mp_uint(p, bucket);
    p += mp_uint(p, epoch);
    p += mp_uint(p, nbuckets);
    if (delta) p += mp_uint(p, 1);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_hello(bc_frame_buf_t *b, uint32_t bucket, uint64_t epoch, uint32_t nbuckets)
{
    return frame_put_hello(b, bucket, epoch, nbuckets, false);
}

bc_status_t
bc_frame_put_hello_delta(bc_frame_buf_t *b, uint32_t bucket, uint64_t epoch, uint32_t nbuckets)
{
    return frame_put_hello(b, bucket, epoch, nbuckets, true);
}

/* An ITEM's or a HEAD's fields after the value (or size): flags, ttl,
 * cas and, with_meta, meta.  The bytes written (at most 32). */
static size_t
mp_put_item_attrs(char *p, uint32_t flags, uint32_t ttl, uint64_t cas, uint32_t meta,
                  bool with_meta)
{
    char *s = p;
    p += mp_uint(p, flags);
    p += mp_uint(p, ttl);
    p += mp_uint(p, cas);
    if (with_meta) p += mp_uint(p, meta);
    return (size_t)(p - s);
}

bc_status_t
bc_frame_put_item(bc_frame_buf_t *b, const char *key, size_t nkey, const char *value,
                  size_t nvalue, uint32_t flags, uint32_t ttl, uint64_t cas)
{
    return bc_frame_put_item_meta(b, key, nkey, value, nvalue, flags, ttl, cas, 0);
}

bc_status_t
bc_frame_put_item_meta(bc_frame_buf_t *b, const char *key, size_t nkey, const char *value,
                       size_t nvalue, uint32_t flags, uint32_t ttl, uint64_t cas, uint32_t meta)
{
    if (nkey > 0xffffffffu || nvalue > 0xffffffffu - 64 - nkey) return BC_ETOOLARGE;
    char *p = frame_open(b, 48 + nkey + nvalue), *s = p;
    if (p == NULL) return BC_ENOMEM;
    /* BEHAVIOR: the meta field only when there is meta state, so items
     * without it are the frames earlier nodes read. */
    *p++ = (char)(0x90 | (meta != 0 ? 7 : 6));
    p += mp_uint(p, BC_FRAME_ITEM);
    p += mp_bin_header(p, nkey);
    memcpy(p, key, nkey);
    p += nkey;
    p += mp_bin_header(p, nvalue);
    if (nvalue > 0) memcpy(p, value, nvalue);
    p += nvalue;
    p += mp_put_item_attrs(p, flags, ttl, cas, meta, meta != 0);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_head(bc_frame_buf_t *b, const char *key, size_t nkey, uint64_t size, uint32_t flags,
                  uint32_t ttl, uint64_t cas, uint32_t meta)
{
    if (size == 0 || size > 0xffffffffu) return BC_EINVAL;
    if (nkey > 0xffffu) return BC_ETOOLARGE;
    char *p = frame_open(b, 64 + nkey), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 7);
    p += mp_uint(p, BC_FRAME_HEAD);
    p += mp_bin_header(p, nkey);
    memcpy(p, key, nkey);
    p += nkey;
    p += mp_uint(p, size);
    p += mp_put_item_attrs(p, flags, ttl, cas, meta, true);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_part(bc_frame_buf_t *b, const char *chunk, size_t n)
{
    if (n == 0) return BC_EINVAL;
    if (n > 0xffffffffu - 16) return BC_ETOOLARGE;
    char *p = frame_open(b, 16 + n), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 2);
    p += mp_uint(p, BC_FRAME_PART);
    p += mp_bin_header(p, n);
    memcpy(p, chunk, n);
    p += n;
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_end(bc_frame_buf_t *b, uint64_t items, uint64_t bytes)
{
    char *p = frame_open(b, 32), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 3);
    p += mp_uint(p, BC_FRAME_END);
    p += mp_uint(p, items);
    p += mp_uint(p, bytes);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_rhello(bc_frame_buf_t *b, bool full, const char *replid, uint64_t offset)
{
    size_t n = strlen(replid);
    if (n > BC_FRAME_REPLID_MAX) return BC_EINVAL;
    char *p = frame_open(b, 64 + n), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 6);
    p += mp_uint(p, BC_FRAME_RHELLO);
    p += mp_str(p, BC_FRAME_REPL_MAGIC, sizeof(BC_FRAME_REPL_MAGIC) - 1);
    p += mp_uint(p, BC_FRAME_VERSION);
    p += mp_uint(p, full ? 1 : 0);
    p += mp_str(p, replid, n);
    p += mp_uint(p, offset);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

/* A frame [type, key] or [type, key, ttl]. */
static bc_status_t
frame_put_key(bc_frame_buf_t *b, bc_frame_type_t type, const char *key, size_t nkey,
              bool with_ttl, uint32_t ttl)
{
    if (nkey > 0xffffu) return BC_ETOOLARGE;
    char *p = frame_open(b, 24 + nkey), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | (with_ttl ? 3 : 2));
    p += mp_uint(p, type);
    p += mp_bin_header(p, nkey);
    memcpy(p, key, nkey);
    p += nkey;
    if (with_ttl) p += mp_uint(p, ttl);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

/* A frame [type, number]. */
static bc_status_t
frame_put_num(bc_frame_buf_t *b, bc_frame_type_t type, uint64_t v)
{
    char *p = frame_open(b, 16), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 2);
    p += mp_uint(p, type);
    p += mp_uint(p, v);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_del(bc_frame_buf_t *b, const char *key, size_t nkey)
{
    return frame_put_key(b, BC_FRAME_DEL, key, nkey, false, 0);
}

bc_status_t
bc_frame_put_touch(bc_frame_buf_t *b, const char *key, size_t nkey, uint32_t ttl)
{
    return frame_put_key(b, BC_FRAME_TOUCH, key, nkey, true, ttl);
}

bc_status_t
bc_frame_put_flush(bc_frame_buf_t *b, uint32_t when, uint64_t mark)
{
    char *p = frame_open(b, 32), *s = p;
    if (p == NULL) return BC_ENOMEM;
    *p++ = (char)(0x90 | 3);
    p += mp_uint(p, BC_FRAME_FLUSH);
    p += mp_uint(p, when);
    p += mp_uint(p, mark);
    frame_close(b, (size_t)(p - s));
    return BC_OK;
}

bc_status_t
bc_frame_put_drop(bc_frame_buf_t *b, uint32_t bucket)
{
    return frame_put_num(b, BC_FRAME_DROP, bucket);
}

bc_status_t
bc_frame_put_ping(bc_frame_buf_t *b, uint64_t offset)
{
    return frame_put_num(b, BC_FRAME_PING, offset);
}

bc_status_t
bc_frame_put_ack(bc_frame_buf_t *b, uint64_t offset)
{
    return frame_put_num(b, BC_FRAME_ACK, offset);
}

/* ---- decoding ---- */

typedef struct mp_reader {
    const unsigned char *p;
    const unsigned char *end;
} mp_reader_t;

static inline uint64_t
get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static bool
mp_need(const mp_reader_t *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

/* An array header; *n its element count. */
static bool
mp_read_array(mp_reader_t *r, uint32_t *n)
{
    if (!mp_need(r, 1)) return false;
    unsigned char t = *r->p;
    if ((t & 0xf0) == 0x90) {
        *n = t & 0x0f;
        r->p++;
        return true;
    }
    int w = t == 0xdc ? 2 : t == 0xdd ? 4 : 0;
    if (w == 0 || !mp_need(r, 1 + (size_t)w)) return false;
    *n = (uint32_t)get_be(r->p + 1, w);
    r->p += 1 + w;
    return true;
}

/* An unsigned integer (or a non-negative signed one) up to max. */
static bool
mp_read_uint(mp_reader_t *r, uint64_t max, uint64_t *v)
{
    if (!mp_need(r, 1)) return false;
    unsigned char t = *r->p;
    uint64_t x;
    if (t < 0x80) {
        x = t;
        r->p++;
    } else {
        int w;
        bool is_signed = false;
        switch (t) {
        case 0xcc: w = 1; break;
        case 0xcd: w = 2; break;
        case 0xce: w = 4; break;
        case 0xcf: w = 8; break;
        case 0xd0: w = 1; is_signed = true; break;
        case 0xd1: w = 2; is_signed = true; break;
        case 0xd2: w = 4; is_signed = true; break;
        case 0xd3: w = 8; is_signed = true; break;
        default: return false;
        }
        if (!mp_need(r, 1 + (size_t)w)) return false;
        x = get_be(r->p + 1, w);
        if (is_signed && (r->p[1] & 0x80)) return false; /* negative */
        r->p += 1 + w;
    }
    if (x > max) return false;
    *v = x;
    return true;
}

/* bin or str: a pointer into the buffer and a length. */
static bool
mp_read_bytes(mp_reader_t *r, const char **s, size_t *n)
{
    if (!mp_need(r, 1)) return false;
    unsigned char t = *r->p;
    size_t len, hdr;
    if ((t & 0xe0) == 0xa0) {
        len = t & 0x1f;
        hdr = 1;
    } else {
        int w;
        switch (t) {
        case 0xc4: case 0xd9: w = 1; break;
        case 0xc5: case 0xda: w = 2; break;
        case 0xc6: case 0xdb: w = 4; break;
        default: return false;
        }
        if (!mp_need(r, 1 + (size_t)w)) return false;
        len = (size_t)get_be(r->p + 1, w);
        hdr = 1 + (size_t)w;
    }
    if (!mp_need(r, hdr) || (size_t)(r->end - r->p) - hdr < len) return false;
    *s = (const char *)r->p + hdr;
    *n = len;
    r->p += hdr + len;
    return true;
}

/* The next field is the string (or bin) `magic`. */
static bool
mp_read_magic(mp_reader_t *r, const char *magic)
{
    const char *s;
    size_t n;
    return mp_read_bytes(r, &s, &n) && n == strlen(magic) && memcmp(s, magic, n) == 0;
}

/* An ITEM's or a HEAD's fields after the value (or size): flags, ttl,
 * cas and, with_meta, meta. */
static bool
mp_read_item_attrs(mp_reader_t *r, bc_frame_t *out, bool with_meta)
{
    uint64_t flags, ttl, meta = 0;
    if (!mp_read_uint(r, UINT32_MAX, &flags) || !mp_read_uint(r, UINT32_MAX, &ttl) ||
        !mp_read_uint(r, UINT64_MAX, &out->cas) ||
        (with_meta && !mp_read_uint(r, UINT32_MAX, &meta))) {
        return false;
    }
    out->flags = (uint32_t)flags;
    out->ttl = (uint32_t)ttl;
    out->meta = (uint32_t)meta;
    return true;
}

bc_status_t
bc_frame_decode(const char *buf, size_t len, size_t max_payload, bc_frame_t *out,
                size_t *consumed, char *err, size_t errlen)
{
    *consumed = 0;
    if (len < BC_FRAME_HEADER_LEN) return BC_EAGAIN;
    const unsigned char *h = (const unsigned char *)buf;
    uint64_t plen = get_be(h, 4);
    uint32_t crc = (uint32_t)get_be(h + 4, 4);
    if (plen > max_payload) {
        return bc_fail(err, errlen, BC_ETOOLARGE,
                          "frame of %llu bytes is over the limit of %zu",
                          (unsigned long long)plen, max_payload);
    }
    if (plen == 0) return bc_fail(err, errlen, BC_EPROTO, "empty frame");
    if (len - BC_FRAME_HEADER_LEN < plen) return BC_EAGAIN;
    const char *payload = buf + BC_FRAME_HEADER_LEN;
    uint32_t got = bc_frame_crc32c(0, payload, (size_t)plen);
    if (got != crc) {
        return bc_fail(err, errlen, BC_EPROTO, "frame checksum mismatch (crc32c %08x, header "
                          "says %08x): corrupted in transit", got, crc);
    }

    mp_reader_t r = {(const unsigned char *)payload, (const unsigned char *)payload + plen};
    uint32_t n;
    uint64_t type, v;
    memset(out, 0, sizeof(*out));
    if (!mp_read_array(&r, &n) || n == 0 || !mp_read_uint(&r, 255, &type)) {
        return bc_fail(err, errlen, BC_EPROTO, "frame payload is not a msgpack array "
                          "starting with a frame type");
    }
    switch (type) {
    case BC_FRAME_HELLO: {
        if (n != 6 && n != 7) return bc_fail(err, errlen, BC_EPROTO, "HELLO frame with %u "
                                                "fields, expected 6 or 7", n);
        if (!mp_read_magic(&r, BC_FRAME_MAGIC)) {
            return bc_fail(err, errlen, BC_EPROTO, "HELLO frame without the \"%s\" magic",
                              BC_FRAME_MAGIC);
        }
        if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
        out->version = (uint32_t)v;
        if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
        out->bucket = (uint32_t)v;
        if (!mp_read_uint(&r, UINT64_MAX, &out->epoch)) goto bad_field;
        if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
        out->nbuckets = (uint32_t)v;
        if (n == 7) {
            if (!mp_read_uint(&r, 1, &v)) goto bad_field;
            out->delta = v == 1;
        }
        break;
    }
    case BC_FRAME_ITEM:
        if (n != 6 && n != 7) return bc_fail(err, errlen, BC_EPROTO, "ITEM frame with %u "
                                                "fields, expected 6 or 7", n);
        if (!mp_read_bytes(&r, &out->key, &out->nkey) ||
            !mp_read_bytes(&r, &out->value, &out->nvalue) ||
            !mp_read_item_attrs(&r, out, n == 7)) {
            goto bad_field;
        }
        break;
    case BC_FRAME_HEAD:
        if (n != 7) return bc_fail(err, errlen, BC_EPROTO, "HEAD frame with %u fields, "
                                      "expected 7", n);
        if (!mp_read_bytes(&r, &out->key, &out->nkey) ||
            !mp_read_uint(&r, UINT32_MAX, &out->size) || out->size == 0 ||
            !mp_read_item_attrs(&r, out, true)) {
            goto bad_field;
        }
        break;
    case BC_FRAME_PART:
        if (n != 2) return bc_fail(err, errlen, BC_EPROTO, "PART frame with %u fields, "
                                      "expected 2", n);
        if (!mp_read_bytes(&r, &out->value, &out->nvalue) || out->nvalue == 0) goto bad_field;
        break;
    case BC_FRAME_END:
        if (n != 3) return bc_fail(err, errlen, BC_EPROTO, "END frame with %u fields, "
                                      "expected 3", n);
        if (!mp_read_uint(&r, UINT64_MAX, &out->items) ||
            !mp_read_uint(&r, UINT64_MAX, &out->bytes)) {
            goto bad_field;
        }
        break;
    case BC_FRAME_RHELLO: {
        if (n != 6) return bc_fail(err, errlen, BC_EPROTO, "RHELLO frame with %u fields, "
                                      "expected 6", n);
        if (!mp_read_magic(&r, BC_FRAME_REPL_MAGIC)) {
            return bc_fail(err, errlen, BC_EPROTO, "RHELLO frame without the \"%s\" magic",
                              BC_FRAME_REPL_MAGIC);
        }
        if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
        out->version = (uint32_t)v;
        if (!mp_read_uint(&r, 1, &v)) goto bad_field;
        out->full = v == 1;
        if (!mp_read_bytes(&r, &out->replid, &out->nreplid) ||
            out->nreplid > BC_FRAME_REPLID_MAX) {
            goto bad_field;
        }
        if (!mp_read_uint(&r, UINT64_MAX, &out->offset)) goto bad_field;
        break;
    }
    case BC_FRAME_DEL:
    case BC_FRAME_TOUCH:
        if (n != (type == BC_FRAME_DEL ? 2u : 3u)) {
            return bc_fail(err, errlen, BC_EPROTO, "%s frame with %u fields",
                              type == BC_FRAME_DEL ? "DEL" : "TOUCH", n);
        }
        if (!mp_read_bytes(&r, &out->key, &out->nkey)) goto bad_field;
        if (type == BC_FRAME_TOUCH) {
            if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
            out->ttl = (uint32_t)v;
        }
        break;
    case BC_FRAME_FLUSH:
        if (n != 3) return bc_fail(err, errlen, BC_EPROTO, "FLUSH frame with %u fields, "
                                      "expected 3", n);
        if (!mp_read_uint(&r, UINT32_MAX, &v)) goto bad_field;
        out->when = (uint32_t)v;
        if (!mp_read_uint(&r, UINT64_MAX, &out->mark)) goto bad_field;
        break;
    case BC_FRAME_DROP:
    case BC_FRAME_PING:
    case BC_FRAME_ACK:
        if (n != 2) return bc_fail(err, errlen, BC_EPROTO, "frame type %llu with %u fields, "
                                      "expected 2", (unsigned long long)type, n);
        if (!mp_read_uint(&r, type == BC_FRAME_DROP ? UINT32_MAX : UINT64_MAX, &v)) {
            goto bad_field;
        }
        if (type == BC_FRAME_DROP) out->bucket = (uint32_t)v;
        else out->offset = v;
        break;
    default:
        return bc_fail(err, errlen, BC_EPROTO, "unknown frame type %llu",
                          (unsigned long long)type);
    }
    if (r.p != r.end) {
        return bc_fail(err, errlen, BC_EPROTO, "%zu stray bytes after the frame's fields",
                          (size_t)(r.end - r.p));
    }
    out->type = (bc_frame_type_t)type;
    *consumed = BC_FRAME_HEADER_LEN + (size_t)plen;
    return BC_OK;

bad_field:
    return bc_fail(err, errlen, BC_EPROTO, "frame type %llu: the field at payload byte %zu "
                      "has the wrong msgpack type or is out of range", (unsigned long long)type,
                      (size_t)(r.p - (const unsigned char *)payload));
}

bc_status_t
bc_frame_stream_next(bc_frame_stream_t *s, const bc_frame_t *f, char *err, size_t errlen)
{
    switch (s->state) {
    case 0:
        if (f->type != BC_FRAME_HELLO) {
            return bc_fail(err, errlen, BC_EPROTO, "stream does not start with HELLO");
        }
        if (f->version != BC_FRAME_VERSION) {
            return bc_fail(err, errlen, BC_EPROTO, "frame version %u, this node speaks %u",
                              f->version, BC_FRAME_VERSION);
        }
        s->bucket = f->bucket;
        s->epoch = f->epoch;
        s->delta = f->delta;
        s->state = 1;
        return BC_OK;
    case 1:
        if (s->part_left > 0) {
            /* BEHAVIOR: an item's parts come back to back, nothing between
             * them, and add up to what its HEAD said exactly. */
            if (f->type != BC_FRAME_PART) {
                return bc_fail(err, errlen, BC_EPROTO, "frame type %d where %llu more bytes "
                               "of an item's value were due", (int)f->type,
                               (unsigned long long)s->part_left);
            }
            if (f->nvalue > s->part_left) {
                return bc_fail(err, errlen, BC_EPROTO, "a PART of %zu bytes where %llu were "
                               "left of the item's value", f->nvalue,
                               (unsigned long long)s->part_left);
            }
            s->part_left -= f->nvalue;
            s->bytes += f->nvalue;
            return BC_OK;
        }
        if (f->type == BC_FRAME_PART) {
            return bc_fail(err, errlen, BC_EPROTO, "a PART without its HEAD");
        }
        if (f->type == BC_FRAME_HEAD) {
            s->items++;
            s->bytes += f->nkey;
            s->part_left = f->size;
            return BC_OK;
        }
        if (f->type == BC_FRAME_ITEM || (f->type == BC_FRAME_DEL && s->delta)) {
            s->items++;
            s->bytes += f->nkey + f->nvalue;
            return BC_OK;
        }
        if (f->type == BC_FRAME_END) {
            if (f->items != s->items || f->bytes != s->bytes) {
                return bc_fail(err, errlen, BC_EPROTO, "END says %llu items / %llu bytes, "
                                  "the stream carried %llu / %llu",
                                  (unsigned long long)f->items, (unsigned long long)f->bytes,
                                  (unsigned long long)s->items, (unsigned long long)s->bytes);
            }
            s->state = 2;
            return BC_OK;
        }
        if (f->type == BC_FRAME_HELLO) {
            return bc_fail(err, errlen, BC_EPROTO, "a second HELLO in the stream");
        }
        return bc_fail(err, errlen, BC_EPROTO, "frame type %d in a%s export stream",
                       (int)f->type, s->delta ? " delta" : " full");
    default:
        return bc_fail(err, errlen, BC_EPROTO, "frame after END");
    }
}

bc_status_t
bc_frame_stream_finish(const bc_frame_stream_t *s, char *err, size_t errlen)
{
    if (s->state == 2) return BC_OK;
    if (s->part_left > 0) {
        return bc_fail(err, errlen, BC_EPROTO, "stream truncated: %llu bytes of an item's "
                       "value missing", (unsigned long long)s->part_left);
    }
    return bc_fail(err, errlen, BC_EPROTO, "stream truncated: %s after %llu items",
                      s->state == 0 ? "no HELLO" : "no END", (unsigned long long)s->items);
}
