/*
 * binary.h -- memcached's binary protocol: the packet layout and the
 * opcodes and statuses memcached 1.6.18 uses (its protocol_binary.h), for
 * binary.c, its unit test and its fuzz target.
 *
 * A request or response is a 24-byte header, then extras, key and value:
 *
 *   byte  0      magic (0x80 request, 0x81 response)
 *         1      opcode
 *         2..3   key length (big-endian)
 *         4      extras length
 *         5      data type (0)
 *         6..7   request: vbucket (ignored); response: status
 *         8..11  total body length: extras + key + value
 *         12..15 opaque (echoed as it came)
 *         16..23 CAS
 *
 * The executor is binary.c (proto_int.h bc__proto_bin_packet): a
 * connection whose first byte is BC_PROTO_BIN_MAGIC (proto_text.h) speaks
 * it from then on, like memcached's default "-B auto".
 */
#ifndef BC_PROTO_BINARY_H
#define BC_PROTO_BINARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BC_BIN_HEADER_LEN 24u
#define BC_BIN_REQ_MAGIC  0x80u
#define BC_BIN_RES_MAGIC  0x81u

typedef enum bc_binary_opcode {
    BC_BIN_GET = 0x00,
    BC_BIN_SET = 0x01,
    BC_BIN_ADD = 0x02,
    BC_BIN_REPLACE = 0x03,
    BC_BIN_DELETE = 0x04,
    BC_BIN_INCREMENT = 0x05,
    BC_BIN_DECREMENT = 0x06,
    BC_BIN_QUIT = 0x07,
    BC_BIN_FLUSH = 0x08,
    BC_BIN_GETQ = 0x09,
    BC_BIN_NOOP = 0x0a,
    BC_BIN_VERSION = 0x0b,
    BC_BIN_GETK = 0x0c,
    BC_BIN_GETKQ = 0x0d,
    BC_BIN_APPEND = 0x0e,
    BC_BIN_PREPEND = 0x0f,
    BC_BIN_STAT = 0x10,
    BC_BIN_SETQ = 0x11,
    BC_BIN_ADDQ = 0x12,
    BC_BIN_REPLACEQ = 0x13,
    BC_BIN_DELETEQ = 0x14,
    BC_BIN_INCREMENTQ = 0x15,
    BC_BIN_DECREMENTQ = 0x16,
    BC_BIN_QUITQ = 0x17,
    BC_BIN_FLUSHQ = 0x18,
    BC_BIN_APPENDQ = 0x19,
    BC_BIN_PREPENDQ = 0x1a,
    BC_BIN_VERBOSITY = 0x1b,   /* not implemented by memcached 1.6.18: unknown */
    BC_BIN_TOUCH = 0x1c,
    BC_BIN_GAT = 0x1d,
    BC_BIN_GATQ = 0x1e,
    BC_BIN_SASL_LIST_MECHS = 0x20,
    BC_BIN_SASL_AUTH = 0x21,
    BC_BIN_SASL_STEP = 0x22,
    BC_BIN_GATK = 0x23,
    BC_BIN_GATKQ = 0x24,
} bc_binary_opcode_t;

typedef enum bc_binary_status {
    BC_BIN_OK = 0x00,
    BC_BIN_KEY_ENOENT = 0x01,
    BC_BIN_KEY_EEXISTS = 0x02,
    BC_BIN_E2BIG = 0x03,
    BC_BIN_EINVAL = 0x04,
    BC_BIN_NOT_STORED = 0x05,
    BC_BIN_DELTA_BADVAL = 0x06,
    /* memcached's NOT_MY_VBUCKET: here a cluster refusal (MOVED, ...) */
    BC_BIN_NOT_MY_VBUCKET = 0x07,
    BC_BIN_AUTH_ERROR = 0x20,
    BC_BIN_UNKNOWN_COMMAND = 0x81,
    BC_BIN_ENOMEM = 0x82,
    /* a forwarded command's owner could not answer */
    BC_BIN_ETMPFAIL = 0x86,
} bc_binary_status_t;

/* A request header, decoded. */
typedef struct bc_binary_header {
    uint8_t magic;
    uint8_t opcode;
    uint16_t keylen;
    uint8_t extlen;
    uint32_t bodylen;
    uint32_t opaque;           /* as it came (not byte-swapped): echoed */
    uint64_t cas;
} bc_binary_header_t;

static inline uint16_t
bc_binary_get16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
bc_binary_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
bc_binary_get64(const unsigned char *p)
{
    return (uint64_t)bc_binary_get32(p) << 32 | bc_binary_get32(p + 4);
}

static inline void
bc_binary_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void
bc_binary_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void
bc_binary_put64(unsigned char *p, uint64_t v)
{
    bc_binary_put32(p, (uint32_t)(v >> 32));
    bc_binary_put32(p + 4, (uint32_t)v);
}

/* Decodes the 24 bytes at p. */
void bc_binary_header_decode(const void *p, bc_binary_header_t *h);

/* Writes a response header into out[0..24). */
void bc_binary_response_header(void *out, uint8_t opcode, uint16_t status, uint8_t extlen,
                            uint16_t keylen, uint32_t bodylen, uint32_t opaque, uint64_t cas);

/* The non-quiet opcode of a quiet one; *quiet tells whether it was. */
uint8_t bc_binary_unquiet(uint8_t opcode, bool *quiet);

/* memcached's text for an error status ("Not found", ...). */
const char *bc_binary_status_text(uint16_t status);

#endif
