/*
 * bc_text.h -- bytes as JSON text: UTF-8 validation and base64 (RFC 4648),
 * for values and keys that JSON cannot carry as they are.
 *
 * BEHAVIOR: a JSON string must be valid UTF-8 and cJSON stops at a NUL,
 * so whoever puts arbitrary bytes (a cached value, a key with bytes
 * >= 0x80) into JSON checks bc_text_is_json_safe first and, when it is
 * not, sends the bytes base64-encoded in a field of its own ("value_base64",
 * "key_base64") instead.
 */
#ifndef BC_TEXT_H
#define BC_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) is valid UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF) and holds no NUL byte. */
bool bc_text_is_json_safe(const char *s, size_t n);

/* Bytes bc_text_base64 writes for n input bytes, NUL included. */
#define BC_TEXT_BASE64_LEN(n) ((((n) + 2) / 3) * 4 + 1)

/* Writes the standard, padded base64 of s[0..n) and a NUL to out, which
 * has room for BC_TEXT_BASE64_LEN(n) bytes.  Returns out. */
char *bc_text_base64(const void *s, size_t n, char *out);

#endif
