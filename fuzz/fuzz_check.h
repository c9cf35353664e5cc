// Property checks for the fuzz targets: a failed check prints what broke and aborts, which both
// libFuzzer (saves the input as a crash) and the replay tests (the test fails) report.
#pragma once

#include <cstdio>
#include <cstdlib>

#define DC_FUZZ_CHECK(cond)                                                              \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
