/*
 * fuzz_mcproto.c -- libFuzzer target for the memcached text protocol parsers
 * (common/bc_mcproto.c).
 *
 * The input is split at '\n' into request lines; each line goes through
 * bc_mc_request_parse() and the result is checked for internal consistency
 * (every pointer inside the line, keys valid and counted right, an error
 * text exactly when the parse failed).  The whole input is also read as a
 * server reply stream with bc_mc_reply_parse(), which must consume the
 * stream monotonically and never point outside it.  Sanitizers catch any
 * out-of-bounds read; __builtin_trap() marks a broken invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mcproto.h"
#include "fuzz_target.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static int
inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && p + n <= base + len;
}

static void
check_request(const char *line, size_t len)
{
    bc_mc_request_t req;
    bc_status_t st = bc_mc_request_parse(line, len, &req);

    if (st != BC_OK) {
        CHECK(st == BC_EPROTO);
        CHECK(req.cmd == BC_MC_CMD_NONE);
        CHECK(req.close ? req.error == NULL : req.error != NULL);
        return;
    }
    CHECK(req.cmd != BC_MC_CMD_NONE);
    CHECK(bc_mc_cmd_name(req.cmd)[0] != '\0');
    switch (req.cmd) {
    case BC_MC_CMD_GET:
    case BC_MC_CMD_GETS:
    case BC_MC_CMD_GAT:
    case BC_MC_CMD_GATS: {
        const char *cursor = req.keys, *key;
        size_t nkey;
        uint32_t count = 0;
        CHECK(req.keys <= req.keys_end);
        CHECK(inside(req.keys, (size_t)(req.keys_end - req.keys), line, len));
        while (bc_mc_next_key(&cursor, req.keys_end, &key, &nkey)) {
            CHECK(inside(key, nkey, line, len));
            CHECK(bc_mc_key_valid(key, nkey));
            count++;
        }
        CHECK(count == req.nkeys);
        CHECK(req.nkeys > 0 || req.cmd == BC_MC_CMD_GAT || req.cmd == BC_MC_CMD_GATS);
        break;
    }
    case BC_MC_CMD_SET:
    case BC_MC_CMD_ADD:
    case BC_MC_CMD_REPLACE:
    case BC_MC_CMD_APPEND:
    case BC_MC_CMD_PREPEND:
    case BC_MC_CMD_CAS:
        CHECK(req.vlen <= BC_MC_VALUE_MAX_LEN);
        /* fall through */
    case BC_MC_CMD_DELETE:
    case BC_MC_CMD_INCR:
    case BC_MC_CMD_DECR:
    case BC_MC_CMD_TOUCH:
        CHECK(inside(req.key, req.nkey, line, len));
        CHECK(bc_mc_key_valid(req.key, req.nkey));
        break;
    case BC_MC_CMD_STATS:
        if (req.subcmd != NULL) CHECK(inside(req.subcmd, req.nsubcmd, line, len));
        break;
    case BC_MC_CMD_VERBOSITY:
        CHECK(req.verbosity <= BC_MC_MAX_VERBOSITY);
        break;
    default:
        break;
    }
}

static void
check_replies(const char *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        bc_mc_reply_t r;
        size_t used = 0;
        bc_status_t st = bc_mc_reply_parse(buf + pos, len - pos, &r, &used);
        if (st != BC_OK) {
            CHECK(st == BC_EAGAIN || st == BC_EPROTO);
            return;
        }
        CHECK(used > 0 && used <= len - pos);
        if (r.kind == BC_MC_REPLY_VALUE) {
            CHECK(inside(r.key, r.nkey, buf + pos, used));
            CHECK(inside(r.value, r.vlen, buf + pos, used));
        }
        CHECK(inside(r.text, r.ntext, buf + pos, used) || r.ntext == 0);
        pos += used;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy without spare bytes, so a read past the end is caught. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) return 0;
    memcpy(buf, data, size);

    size_t start = 0;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            check_request(buf + start, i - start);
            start = i + 1;
        }
    }
    check_request(buf + start, size - start);
    if (size > BC_MC_LINE_SOFT_MAX) (void)bc_mc_line_may_be_long(buf, size);
    check_replies(buf, size);
    free(buf);
    return 0;
}
