/*
 * fuzz_target.h -- the entry point libFuzzer calls, declared once so every
 * target is compiled with a prototype (-Wmissing-prototypes).
 */
#ifndef BC_FUZZ_TARGET_H
#define BC_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
