/*
 * bc_mcproto.h -- the memcached text protocol, as pure parsing functions.
 *
 * WHAT IT DOES
 *   Request side (used by the node): bc_mc_request_parse() takes ONE command
 *   line, identifies the command, checks the number of arguments, validates
 *   and converts each argument, and fills a bc_mc_request_t.  Whatever is
 *   wrong with the line, the caller gets the exact reply memcached 1.6 would
 *   send ("ERROR", "CLIENT_ERROR bad command line format", ...).
 *
 *   Reply side (used by the client library): bc_mc_reply_parse() recognises
 *   one reply unit (a status line, a STAT line, or a VALUE line with its data
 *   block) at the front of a receive buffer.
 *
 * HOW
 *   No I/O, no allocation, no global state, nothing written: the parser
 *   records (pointer, length) pairs into the caller's line, so the result is
 *   valid exactly as long as the line is.  A line is split on single spaces
 *   only, as memcached does (runs of spaces are one separator; a TAB is an
 *   ordinary byte, which is why keys are separately checked for control
 *   characters).  Multi-key commands (get/gets/gat/gats) do not get an array
 *   of keys -- that would bound the number of keys or need memory -- but the
 *   range of the line that holds them, already validated and counted, which
 *   bc_mc_next_key() walks.
 *
 * FIDELITY TO MEMCACHED 1.6
 *   memcached 1.6.18 is the specification, down to its quirks: the line is
 *   cut at its first NUL byte (memcached reads it as a C string); at most 24
 *   tokens are split (the rest of a longer line is one token, as
 *   memcached's tokenize_command leaves it); the command is dispatched on
 *   its first letter and then on its number of tokens (a wrong number is
 *   "ERROR", as memcached's WANT_TOKENS); numbers are read the way
 *   memcached's safe_strtoul/strtol family reads them (leading blanks and a
 *   sign accepted, trailing garbage not, "-0" is zero, a negative value for
 *   an unsigned field is an error) and then TRUNCATED to 32 bits where
 *   memcached stores them in 32 bits: flags 4294967296 are 0, an exptime is
 *   an int32, a data length of 4294967297 is 1.  "noreply" is recognised
 *   when it is the last word of any command that takes it, even where the
 *   grammar would put a number (memcached does the same and then stays
 *   silent about the resulting error).  A key is any 1..250 bytes without a
 *   space: control bytes and TABs are key bytes.  A line whose last word
 *   starts with "HTTP/" and whose command is unknown asks for the
 *   connection to be closed, which is how memcached gets rid of browsers.
 *
 *   Meta commands (mg ms md ma mn me) are only tokenized here: their flags
 *   are interpreted by bc_mc_meta_parse (bc_mcmeta.h) as the command runs,
 *   in memcached's order.
 */
#ifndef BC_MCPROTO_H
#define BC_MCPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

/* The memcached release whose protocol the node speaks: what "version"
 * answers (clients such as libmemcached decide features by it). */
#define BC_MC_PROTOCOL_VERSION "1.6.18"

#define BC_MC_KEY_MAX_LEN 250u
/* Largest data block length accepted on a storage command line. */
#define BC_MC_VALUE_MAX_LEN ((uint32_t)INT32_MAX - 2u)
/*
 * Line length policy (memcached's, made explicit): a client that has sent
 * more than BC_MC_LINE_SOFT_MAX bytes without a newline is only tolerated
 * while the line is a "get " or "gets " multi-get (bc_mc_line_may_be_long);
 * even a multi-get line is refused beyond BC_MC_LINE_HARD_MAX bytes.
 * memcached lets a multi-get line grow without limit; we bound it so one
 * connection cannot hold unbounded memory.  64 KiB is ~250 keys of maximal
 * length, or thousands of ordinary ones.
 */
#define BC_MC_LINE_SOFT_MAX 2048u
#define BC_MC_LINE_HARD_MAX 65536u
#define BC_MC_MAX_VERBOSITY 2u

/* The exact reply texts (without "\r\n") the parser hands back. */
#define BC_MC_ERR_UNKNOWN      "ERROR"
#define BC_MC_ERR_FORMAT       "CLIENT_ERROR bad command line format"
#define BC_MC_ERR_DELTA        "CLIENT_ERROR invalid numeric delta argument"
#define BC_MC_ERR_EXPTIME      "CLIENT_ERROR invalid exptime argument"
#define BC_MC_ERR_DELETE_USAGE \
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"

typedef enum bc_mc_cmd {
    BC_MC_CMD_NONE = 0,          /* parse failed; see bc_mc_request_t.error */
    BC_MC_CMD_GET,
    BC_MC_CMD_GETS,
    BC_MC_CMD_GAT,
    BC_MC_CMD_GATS,
    BC_MC_CMD_SET,
    BC_MC_CMD_ADD,
    BC_MC_CMD_REPLACE,
    BC_MC_CMD_APPEND,
    BC_MC_CMD_PREPEND,
    BC_MC_CMD_CAS,
    BC_MC_CMD_DELETE,
    BC_MC_CMD_INCR,
    BC_MC_CMD_DECR,
    BC_MC_CMD_TOUCH,
    BC_MC_CMD_FLUSH_ALL,
    BC_MC_CMD_STATS,
    BC_MC_CMD_VERSION,
    BC_MC_CMD_VERBOSITY,
    BC_MC_CMD_QUIT,
    /* meta commands: tokens in bc_mc_request_t.tok (see bc_mcmeta.h) */
    BC_MC_CMD_MG,
    BC_MC_CMD_MS,
    BC_MC_CMD_MD,
    BC_MC_CMD_MA,
    BC_MC_CMD_MN,
    BC_MC_CMD_ME,
    /* administration, arguments in tok */
    BC_MC_CMD_SHUTDOWN,
    BC_MC_CMD_CACHE_MEMLIMIT,
    BC_MC_CMD_SLABS,
    BC_MC_CMD_LRU,
    BC_MC_CMD_LRU_CRAWLER,
    BC_MC_CMD_WATCH,
    BC_MC_CMD_REFRESH_CERTS,
} bc_mc_cmd_t;

/* memcached's token limit: at most BC_MC_MAX_TOKENS - 1 words are split;
 * the terminal token (always empty) then points at the rest. */
#define BC_MC_MAX_TOKENS 24

typedef struct bc_mc_token {
    const char *p;
    uint32_t n;
} bc_mc_token_t;

/*
 * A parsed request.  Every pointer points into the line given to
 * bc_mc_request_parse() (or at a static string for `error`); nothing is
 * owned.  Fields not used by the command are zero.
 */
typedef struct bc_mc_request {
    bc_mc_cmd_t cmd;
    bool noreply;             /* suppress the reply, errors included */
    bool close;               /* close the connection, no reply (HTTP) */
    const char *error;        /* on BC_EPROTO: the reply line, no CRLF */

    const char *key;          /* storage, cas, delete, incr, decr, touch */
    uint32_t nkey;

    const char *keys;         /* get/gets/gat/gats: [keys, keys_end) holds */
    const char *keys_end;     /*   nkeys valid keys separated by spaces */
    uint32_t nkeys;

    uint32_t flags;           /* storage */
    uint32_t vlen;            /* storage: data block length without CRLF */
    int64_t exptime;          /* storage, touch, gat/gats, flush_all delay */
    bool has_delay;           /* flush_all: a delay was given */
    uint64_t cas;             /* cas: the expected CAS unique */
    uint64_t delta;           /* incr/decr */
    uint32_t verbosity;       /* verbosity: clamped to BC_MC_MAX_VERBOSITY */
    const char *subcmd;       /* stats: first word after "stats" or NULL */
    uint32_t nsubcmd;

    /* The line's tokens as memcached's tokenize_command splits it: tok[0]
     * is the command; ntok counts them PLUS the terminal token, as
     * memcached's ntokens does (so "mg k v" has ntok 4); tok[ntok - 1] is
     * that empty terminal token.  tok_rest: the line had more words than
     * fit (they start at tok[ntok - 1].p).  Filled for every line. */
    bc_mc_token_t tok[BC_MC_MAX_TOKENS];
    uint32_t ntok;
    bool tok_rest;
} bc_mc_request_t;

/*
 * Parses one command line.  `line` holds `len` bytes WITHOUT the final
 * "\n"; one trailing "\r" is stripped here.  The line need not be
 * NUL-terminated and is not modified; *req borrows from it.
 *
 * Returns BC_OK with req->cmd set, or BC_EPROTO with req->error set to the
 * reply (unless req->close, where the connection is to be closed without a
 * reply).  On BC_EPROTO req->noreply may still be true: memcached then
 * sends nothing.  Errors: BC_EPROTO only.
 */
bc_status_t bc_mc_request_parse(const char *line, size_t len, bc_mc_request_t *req);

/*
 * Walks the keys of a multi-key request: *cursor starts at req->keys; each
 * call stores the next key in *key and *nkey and returns true, or returns false
 * at `end` (req->keys_end).
 */
bool bc_mc_next_key(const char **cursor, const char *end, const char **key, size_t *nkey);

/* True when the key is 1..250 bytes (any bytes: the parser has split on
 * spaces already). */
bool bc_mc_key_valid(const char *key, size_t nkey);

/*
 * For a partial line (no newline yet) of `len` bytes longer than
 * BC_MC_LINE_SOFT_MAX: true when it may keep growing, i.e. it is a "get " or
 * "gets " command after at most 100 leading spaces (memcached's rule).
 */
bool bc_mc_line_may_be_long(const char *buf, size_t len);

/* The command's protocol name ("get", "flush_all", ...); "" for NONE. */
const char *bc_mc_cmd_name(bc_mc_cmd_t cmd);

/*
 * Number formatting for replies: writes the decimal digits of v at buf (at
 * least 20 bytes), no NUL; returns the number of digits.
 */
size_t bc_mc_u64_to_dec(uint64_t v, char *buf);

/* ---- reply side ---- */

typedef enum bc_mc_reply_kind {
    BC_MC_REPLY_VALUE,        /* VALUE key flags bytes [cas] + data block */
    BC_MC_REPLY_END,
    BC_MC_REPLY_STORED,
    BC_MC_REPLY_NOT_STORED,
    BC_MC_REPLY_EXISTS,
    BC_MC_REPLY_NOT_FOUND,
    BC_MC_REPLY_DELETED,
    BC_MC_REPLY_TOUCHED,
    BC_MC_REPLY_OK,
    BC_MC_REPLY_RESET,
    BC_MC_REPLY_NUMBER,       /* incr/decr result */
    BC_MC_REPLY_STAT,         /* STAT name value */
    BC_MC_REPLY_VERSION,      /* VERSION text */
    BC_MC_REPLY_ERROR,        /* ERROR [text] */
    BC_MC_REPLY_CLIENT_ERROR, /* CLIENT_ERROR text */
    BC_MC_REPLY_SERVER_ERROR, /* SERVER_ERROR text */
} bc_mc_reply_kind_t;

/* One reply unit; pointers borrow from the buffer given to the parser. */
typedef struct bc_mc_reply {
    bc_mc_reply_kind_t kind;
    const char *key;          /* VALUE */
    uint32_t nkey;
    uint32_t flags;           /* VALUE */
    uint32_t vlen;            /* VALUE: data length without CRLF */
    const char *value;        /* VALUE: the data (vlen bytes) */
    bool has_cas;             /* VALUE from gets/gats */
    uint64_t cas;
    uint64_t number;          /* NUMBER */
    const char *text;         /* STAT name, VERSION/error text ("" if none) */
    uint32_t ntext;
    const char *stat_value;   /* STAT value */
    uint32_t nstat_value;
} bc_mc_reply_t;

/*
 * Parses the reply unit at the front of buf[0..len).  On BC_OK, *consumed
 * is its length (for VALUE including the data block and its CRLF).
 * Errors: BC_EAGAIN (incomplete: read more and call again with the same
 * front), BC_EPROTO (not a memcached reply: the stream is unusable).
 * A line longer than 4096 bytes without its CRLF is BC_EPROTO.
 */
bc_status_t bc_mc_reply_parse(const char *buf, size_t len, bc_mc_reply_t *reply,
                              size_t *consumed);

#endif
