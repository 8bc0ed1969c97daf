/*
 * bc_mcmeta.h -- memcached's meta protocol (mg ms md ma mn me), the pure
 * parsing part: the flags of a meta command line and memcached's base64
 * for binary keys.
 *
 * WHAT IT DOES
 *   bc_mc_request_parse (bc_mcproto.h) tokenizes a meta command line the
 *   way memcached does; bc_mc_meta_parse then reads its flags exactly as
 *   memcached 1.6.18's _meta_flag_preparse does: one letter per token,
 *   a letter seen twice is "CLIENT_ERROR duplicate flag", an unknown one
 *   "CLIENT_ERROR invalid flag", numbers read with memcached's safe_strto*
 *   rules (and 32-bit truncation), the key base64-decoded in place of the
 *   token when the `b` flag is given.  The command itself (node/proto/
 *   meta.c) then walks the tokens again, in order, to build its reply --
 *   memcached's replies depend on the order of the flags (`t` before or
 *   after `T`, ...), so no "parsed" representation replaces the tokens.
 *
 * HOW
 *   No I/O, no allocation, no state.  A decoded key is written into a
 *   caller's buffer of BC_MC_KEY_MAX_LEN bytes (a decoded key is never
 *   longer than its encoding, which is at most 250 bytes).
 */
#ifndef BC_MCMETA_H
#define BC_MCMETA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_mcproto.h"
#include "bc_status.h"

/* memcached: more than this many tokens (ntok) is "options flags too long". */
#define BC_MC_META_MAX_TOKENS 20u
/* Longest opaque token (O flag), the letter included. */
#define BC_MC_META_MAX_OPAQUE 32u

typedef struct bc_mc_meta {
    bool no_update;            /* u */
    bool locked;               /* l h T N R: memcached locks the item (no effect on replies) */
    bool vivify;               /* N */
    bool la;                   /* l */
    bool value;                /* v */
    bool set_stale;            /* I */
    bool no_reply;             /* q */
    bool has_cas;              /* C */
    bool new_ttl;              /* T */
    bool key_binary;           /* b */
    char mode;                 /* M<char>, 0 if none */
    int64_t exptime;           /* T: memcached exptime (int32 range) */
    int64_t autoviv_exptime;   /* N */
    int64_t recache_time;      /* R */
    uint32_t client_flags;     /* F */
    uint64_t req_cas_id;       /* C */
    uint64_t delta;            /* D (ma; the caller presets 1) */
    uint64_t initial;          /* J (ma) */
    const char *key;           /* the key: tok[1], or its decoding in keybuf */
    uint32_t nkey;
} bc_mc_meta_t;

/*
 * memcached's _meta_flag_preparse over req->tok[start .. ntok - 2] (and,
 * like memcached, on through a line cut at the token limit: the caller
 * checks BC_MC_META_MAX_TOKENS first).  `of` must be zeroed by the caller
 * except fields it presets (delta).  keybuf: BC_MC_KEY_MAX_LEN bytes for a
 * base64-decoded key.  Returns true, or false with *err set to the reply
 * line (no CRLF); *err is preset by the caller to its default error text,
 * which memcached uses for errors without a text of their own (a bad F).
 */
bool bc_mc_meta_parse(const bc_mc_request_t *req, uint32_t start, bc_mc_meta_t *of,
                      char *keybuf, const char **err);

/* memcached's safe_strtoull on [s, s+n). */
bool bc_mc_meta_u64(const char *s, size_t n, uint64_t *out);
/* memcached's safe_strtol on [s, s+n): the int32 value in *out. */
bool bc_mc_meta_i32(const char *s, size_t n, int64_t *out);

/*
 * memcached's base64 (base64.c, from hostap): decode skips bytes outside
 * the alphabet, needs a multiple of 4 symbols and stops after the first
 * block with padding; returns the decoded length, 0 on failure.  encode
 * writes padded base64 and returns its length, 0 when out_len is short
 * (memcached's bound: len * 4 / 3 + 4 plus a line-feed allowance and a
 * NUL).  out may equal src for decode.
 */
size_t bc_mc_meta_base64_decode(const char *src, size_t len, char *out, size_t out_len);
size_t bc_mc_meta_base64_encode(const char *src, size_t len, char *out, size_t out_len);

/*
 * Reply side: recognises one meta reply unit at the front of buf[0..len):
 * a line (HD, NF, EN, ..., or an error), or a VA line with its data block.
 * *consumed receives its length, *is_mn whether it is the line "MN".
 * Errors: BC_EAGAIN (incomplete), BC_EPROTO (a line over 4096 bytes, a
 * bare LF, or a VA line without a valid length).
 */
bc_status_t bc_mc_meta_reply_unit(const char *buf, size_t len, size_t *consumed, bool *is_mn);

#endif
